// ViT, GPT and DiT evaluation and generation on checkpoints of short synthetic runs: the
// evaluation loss equals the trainer's own evaluation on the same held-out samples, accuracy
// equals a plain argmax count, generation follows its sampling rule; the DiT image grid puts
// each image and caption where it belongs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "eval/generate.h"
#include "eval/load.h"
#include "eval/model_eval.h"
#include "eval/run_eval.h"
#include "tests/support/reference.h"
#include "train/synthetic_data.h"
#include "train/trainer.h"

namespace tessera::eval {
namespace {
namespace fs = std::filesystem;

// Trains CONFIG for `steps` with an evaluation of 2 batches at the end; returns the run dir.
std::string train_run(const std::string& name, const std::string& config, int steps,
                      std::vector<std::string> sets) {
  const std::string dir = (fs::path(::testing::TempDir()) / name).string();
  fs::remove_all(dir);
  train::TrainOptions o;
  o.config_path = testing::source_path(config);
  o.overrides = std::move(sets);
  o.overrides.push_back("train.steps=" + std::to_string(steps));
  o.overrides.push_back("eval.every_steps=" + std::to_string(steps));
  o.overrides.push_back("eval.batches=2");
  o.run_dir = dir;
  o.quiet = true;
  EXPECT_EQ(train::run_train(o), train::kExitOk);
  return dir;
}

double trainer_eval_loss(const std::string& dir) {
  std::ifstream f(dir + "/metrics.jsonl");
  double loss = NAN;
  for (std::string line; std::getline(f, line);) {
    auto r = nlohmann::json::parse(line);
    if (r.value("kind", std::string()) == "eval") loss = r["loss"].get<double>();
  }
  return loss;
}

TEST(ModelEval, GptLossEqualsTrainerEvalAndGenerationFollowsItsRule) {
  const std::string dir =
      train_run("gpt_eval_run", "configs/gpt_tiny.pbtxt", 20, {"data.global_batch_size=8"});
  EvalOptions o;
  o.checkpoint = dir;
  o.max_samples = 16;  // the trainer's 2 batches of 8 at the held-out positions
  o.batch = 8;
  auto r = run_eval(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR((*r)["val_loss"].get<double>(), trainer_eval_loss(dir), 1e-5);
  EXPECT_NEAR((*r)["perplexity"].get<double>(), std::exp((*r)["val_loss"].get<double>()), 1e-9);
  EXPECT_EQ((*r)["n_tokens"], 16 * 64);

  auto lm = load_checkpoint_model(dir);
  ASSERT_TRUE(lm.ok());
  auto& gpt = static_cast<models::Gpt&>(*lm->model);
  const std::vector<int32_t> prompt = {5, 8, 11, 14};
  GenerateOptions g;
  g.max_new_tokens = 6;
  const auto greedy = generate(gpt, prompt, 64, g);
  ASSERT_EQ(greedy.size(), 6u);
  g.top_k = 1;
  EXPECT_EQ(generate(gpt, prompt, 64, g), greedy);  // top-1 sampling is greedy
  g.top_k = 3;
  g.seed = 7;
  const auto sampled = generate(gpt, prompt, 64, g);
  EXPECT_EQ(generate(gpt, prompt, 64, g), sampled);  // same seed, same tokens
  // Each sampled token is among the 3 most likely next tokens of its prefix; each greedy token
  // is the most likely one.
  auto top = [&](const std::vector<int32_t>& seq, int k) {
    Tensor t = Tensor::empty({1, int64_t(seq.size())}, DType::i32);
    std::copy(seq.begin(), seq.end(), t.data<int32_t>());
    const std::vector<float> logits = host_floats(gpt.forward_logits(t));
    const int64_t V = int64_t(logits.size()) / int64_t(seq.size());
    std::vector<int32_t> idx(V);
    for (int64_t i = 0; i < V; ++i) idx[i] = int32_t(i);
    const float* last = logits.data() + (int64_t(seq.size()) - 1) * V;
    std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return last[a] > last[b]; });
    return std::vector<int32_t>(idx.begin(), idx.begin() + k);
  };
  std::vector<int32_t> seq = prompt;
  for (int32_t t : sampled) {
    const auto best = top(seq, 3);
    EXPECT_NE(std::find(best.begin(), best.end(), t), best.end()) << t;
    seq.push_back(t);
  }
  seq = prompt;
  for (int32_t t : greedy) {
    EXPECT_EQ(top(seq, 1)[0], t);
    seq.push_back(t);
  }
}

// A padded vocabulary (500 ids in a 512-row table): evaluation equals the trainer's, and
// generation never emits a padded id. The padded rows of the loaded model are then overwritten
// with large noise, so that padded logits would win the argmax and take most of a top-k draw if
// they were read at all: generation (greedy, and top-k over more candidates than there are ids)
// must stay in [0, 500) and give exactly the tokens of the clean model.
TEST(ModelEval, PaddedVocabEvalAndGenerationUseOnlyRealIds) {
  const std::string dir =
      train_run("gpt_padded_eval_run", "configs/gpt_tiny.pbtxt", 10,
                {"data.global_batch_size=8", "model.gpt.vocab_size=500",
                 "model.gpt.vocab_pad_multiple=64", "model.gpt.tie_embedding=false"});
  EvalOptions o;
  o.checkpoint = dir;
  o.max_samples = 16;
  o.batch = 8;
  auto r = run_eval(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR((*r)["val_loss"].get<double>(), trainer_eval_loss(dir), 1e-5);
  EXPECT_NEAR((*r)["perplexity"].get<double>(), std::exp((*r)["val_loss"].get<double>()), 1e-9);

  auto clean_lm = load_checkpoint_model(dir);
  auto noisy_lm = load_checkpoint_model(dir);
  ASSERT_TRUE(clean_lm.ok() && noisy_lm.ok());
  auto& clean = static_cast<models::Gpt&>(*clean_lm->model);
  auto& noisy = static_cast<models::Gpt&>(*noisy_lm->model);
  ASSERT_EQ(noisy.vocab_size(), 500);
  ASSERT_EQ(noisy.padded_vocab_size(), 512);
  models::ParamStore& store = noisy.params();
  for (const char* name : {"tok_emb.weight", "head.weight"}) {
    const models::ParamId id = store.find(name);
    ASSERT_GE(id, 0) << name;
    Tensor p = store.param(id);  // (512, C) on the CPU
    const int64_t C = p.dim(1);
    for (int64_t i = 500 * C; i < p.numel(); ++i)
      p.data<float>()[i] = 50.0f * std::sin(0.37f * float(i));
  }
  store.sync_compute_params();
  // The noise does reach the padded logits (so the checks below could fail).
  Tensor probe = Tensor::empty({1, 4}, DType::i32);
  for (int i = 0; i < 4; ++i) probe.data<int32_t>()[i] = 5 + 3 * i;
  const std::vector<float> logits = host_floats(noisy.forward_logits(probe));  // (1, 4, 512)
  const float* last = logits.data() + 3 * 512;
  EXPECT_GT(*std::max_element(last + 500, last + 512), *std::max_element(last, last + 500));

  const std::vector<int32_t> prompt = {5, 8, 11, 14};
  GenerateOptions g;
  g.max_new_tokens = 12;
  const auto greedy = generate(noisy, prompt, 64, g);
  EXPECT_EQ(greedy, generate(clean, prompt, 64, g));
  g.top_k = 600;  // more than Vp: every real id is a candidate, no padded one is
  g.temperature = 4.0f;
  g.seed = 3;
  g.max_new_tokens = 200;
  const auto sampled = generate(noisy, prompt, 64, g);
  EXPECT_EQ(sampled, generate(clean, prompt, 64, g));
  for (const auto* out : {&greedy, &sampled})
    for (int32_t t : *out) {
      EXPECT_GE(t, 0);
      EXPECT_LT(t, 500);
    }
  // A prompt id in the padding is refused, naming it.
  try {
    generate(clean, {5, 507}, 64, g);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prompt token 1 is 507, outside the vocabulary [0, 500)"),
              std::string::npos)
        << e.what();
  }
}

TEST(ModelEval, VitAccuracyIsAnArgmaxCountAndLossEqualsTrainerEval) {
  const std::string dir =
      train_run("vit_eval_run", "configs/vit_tiny.pbtxt", 20, {"data.global_batch_size=16"});
  auto lm = load_checkpoint_model(dir);
  ASSERT_TRUE(lm.ok()) << lm.status();
  ASSERT_EQ(lm->family, "vit");
  auto& vit = static_cast<models::Vit&>(*lm->model);
  train::SyntheticData data(lm->info.config);
  constexpr int64_t kHeldOut = int64_t(1) << 40, kN = 32;
  BatchFn fn = [&](int64_t first, int64_t count) { return data.batch(kHeldOut + first, count); };
  const nlohmann::json r = evaluate_vit(vit, fn, kN, 16);
  EXPECT_NEAR(r["loss"].get<double>(), trainer_eval_loss(dir), 1e-5);
  // Top-1 by a plain loop over the logits (argmax, first index wins ties).
  const models::Batch all = fn(0, kN);
  const std::vector<float> logits = host_floats(vit.forward_logits(all.at("images")));
  const int64_t C = int64_t(logits.size()) / kN;
  int correct = 0;
  for (int64_t i = 0; i < kN; ++i) {
    const float* row = logits.data() + i * C;
    correct += (std::max_element(row, row + C) - row) == all.at("labels").data<int32_t>()[i];
  }
  EXPECT_NEAR(r["top1"].get<double>(), double(correct) / kN, 1e-12);
  EXPECT_GE(r["top5"].get<double>(), r["top1"].get<double>());
  EXPECT_NEAR(r["chance_top1"].get<double>(), 1.0 / double(C), 1e-12);
}

TEST(ModelEval, DitLossByTimestepBucket) {
  const std::string dir =
      train_run("dit_eval_run", "configs/dit_tiny.pbtxt", 5, {"data.global_batch_size=8"});
  EvalOptions o;
  o.checkpoint = dir;
  o.max_samples = 16;
  o.batch = 8;
  o.dit_buckets = 4;
  auto r = run_eval(o);
  ASSERT_TRUE(r.ok()) << r.status();
  double mean = 0;
  for (const char* k : {"loss_t0_249", "loss_t250_499", "loss_t500_749", "loss_t750_999"}) {
    ASSERT_TRUE(r->contains(k)) << r->dump();
    EXPECT_TRUE(std::isfinite((*r)[k].get<double>()));
    mean += (*r)[k].get<double>() / 4;
  }
  EXPECT_NEAR((*r)["val_loss"].get<double>(), mean, 1e-9);
  // Buckets see different noise levels, so their losses differ.
  EXPECT_NE((*r)["loss_t0_249"].get<double>(), (*r)["loss_t750_999"].get<double>());
}

TEST(ImageGrid, CellsAndCaptionsLandInPlace) {
  // 2 rows x 3 columns of 4x4 solid images; value v maps to round((v + 1) * 127.5).
  const int rows = 2, cols = 3, S = 4, scale = 5;
  std::vector<float> px;
  for (int i = 0; i < rows * cols; ++i)
    for (int p = 0; p < S * S * 3; ++p) px.push_back(-1.0f + 0.3f * float(i));
  const Canvas c = image_grid(px, S, S, 3, rows, cols, {"row a", "row b"}, scale);
  const int pad = 4, caption = 8 + 6, cw = S * scale, ch = S * scale;
  EXPECT_EQ(c.width(), pad + cols * (cw + pad));
  EXPECT_EQ(c.height(), pad + rows * (ch + caption + pad));
  for (int r = 0; r < rows; ++r) {
    for (int k = 0; k < cols; ++k) {
      const int i = r * cols + k;
      const uint8_t v = uint8_t(std::lround((0.3f * float(i)) * 127.5f));
      const int x = pad + k * (cw + pad) + cw / 2, y = pad + r * (ch + caption + pad) + ch / 2;
      EXPECT_EQ(c.at(x, y), (Rgb{v, v, v})) << "image " << i;
    }
    // Caption ink (black) in the band under the row.
    int ink = 0;
    const int y0 = pad + r * (ch + caption + pad) + ch;
    for (int y = y0; y < y0 + caption; ++y)
      for (int x = 0; x < c.width(); ++x) ink += c.at(x, y) == Rgb{0, 0, 0};
    EXPECT_GT(ink, 20) << "row " << r;
  }
}

}  // namespace
}  // namespace tessera::eval
