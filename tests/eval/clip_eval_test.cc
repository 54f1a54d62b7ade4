// CLIP evaluation on a CLIP trained a few steps on synthetic data: the tower accessors agree
// with the training forward, and zero-shot / retrieval metrics agree with an independent numpy
// implementation run on the same embeddings.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "eval/clip_eval.h"
#include "eval/load.h"
#include "eval/metrics.h"
#include "tests/support/reference.h"
#include "train/config.h"
#include "train/synthetic_data.h"
#include "train/trainer.h"

namespace tessera::eval {
namespace {

std::string fresh(const std::string& name) {
  const auto d = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::remove_all(d);
  return d.string();
}

template <typename T>
void dump(const std::string& path, const std::vector<T>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}

// A tiny CLIP trained 150 steps on synthetic data (classes with fixed captions), loaded back
// from its checkpoint.
class ClipEvalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    run_dir_ = new std::string(fresh("clip_eval_run"));
    train::TrainOptions o;
    o.config_path = testing::source_path("configs/clip_tiny.pbtxt");
    o.overrides = {"train.steps=150",
                   "data.global_batch_size=32",
                   "log.every_steps=10",
                   "schedule.warmup_steps=10",
                   "model.clip.image.transformer.n_layers=1",
                   "model.clip.text.transformer.n_layers=1",
                   "optim.lr=2e-3"};
    o.run_dir = *run_dir_;
    o.quiet = true;
    ASSERT_EQ(train::run_train(o), train::kExitOk);
  }
  static void TearDownTestSuite() { delete run_dir_; }
  static std::string* run_dir_;
};
std::string* ClipEvalTest::run_dir_ = nullptr;

TEST_F(ClipEvalTest, MetricsMatchNumpyOnTheSameEmbeddings) {
  auto lm = load_checkpoint_model(*run_dir_);
  ASSERT_TRUE(lm.ok()) << lm.status();
  ASSERT_EQ(lm->family, "clip");
  auto& clip = static_cast<models::Clip&>(*lm->model);
  train::SyntheticData data(lm->info.config);
  constexpr int64_t kFirst = int64_t(1) << 40, kN = 96;

  // Classes of the synthetic stream: one fixed caption per class, so the caption names it.
  // Zero-shot prompts: each class's caption (template 0) and the caption cut one token short
  // (template 1), so the average over templates matters.
  const models::Batch all = data.batch(kFirst, kN);
  const int64_t L = all.at("text").dim(1);
  std::map<std::vector<int32_t>, int32_t> class_of;
  std::vector<int32_t> labels;
  ZeroShotPrompts prompts;
  prompts.templates = 2;
  prompts.context = L;
  for (int64_t i = 0; i < kN; ++i) {
    const int32_t* row = all.at("text").data<int32_t>() + i * L;
    const int32_t eot = all.at("text_eot").data<int32_t>()[i];
    std::vector<int32_t> caption(row, row + L);
    auto [it, added] = class_of.emplace(caption, int32_t(class_of.size()));
    labels.push_back(it->second);
    if (!added) continue;
    prompts.class_names.push_back("class " + std::to_string(it->second));
    prompts.tokens.insert(prompts.tokens.end(), caption.begin(), caption.end());
    prompts.eot.push_back(eot);
    std::vector<int32_t> shorter = caption;
    shorter[eot - 1] = shorter[eot];  // end-of-text one position earlier
    shorter[eot] = 0;
    prompts.tokens.insert(prompts.tokens.end(), shorter.begin(), shorter.end());
    prompts.eot.push_back(eot - 1);
  }
  const int64_t K = int64_t(prompts.class_names.size());
  ASSERT_GE(K, 10);
  BatchFn fn = [&](int64_t first, int64_t count) {
    models::Batch b = data.batch(kFirst + first, count);
    Tensor l = Tensor::empty({count}, DType::i32);
    std::copy_n(labels.data() + first, count, l.data<int32_t>());
    b["labels"] = l;
    return b;
  };

  const ClipEmbeddings e = embed_pairs(clip, fn, kN, 40);  // 40: a ragged last batch
  ASSERT_EQ(e.labels, labels);
  // The one-tower accessors give the embeddings of the training forward.
  clip.forward_embeddings(all);
  const std::vector<float> img_ref = host_floats(clip.image_embeddings());
  const std::vector<float> txt_ref = host_floats(clip.text_embeddings());
  ASSERT_EQ(e.image.size(), img_ref.size());
  for (size_t i = 0; i < img_ref.size(); ++i) {
    ASSERT_NEAR(e.image[i], img_ref[i], 1e-5) << i;
    ASSERT_NEAR(e.text[i], txt_ref[i], 1e-5) << i;
  }
  const std::vector<float> pe = embed_prompts(clip, prompts, 7);
  const nlohmann::json got = clip_metrics(e, &pe, &prompts);

  const std::string dir = fresh("clip_eval_dump");
  std::filesystem::create_directories(dir);
  dump(dir + "/image.f32", e.image);
  dump(dir + "/text.f32", e.text);
  dump(dir + "/prompts.f32", pe);
  dump(dir + "/labels.i32", e.labels);
  std::ofstream(dir + "/meta.json")
      << nlohmann::json{{"n", kN}, {"dim", e.dim}, {"classes", K}, {"templates", 2}}.dump();
  const std::string cmd = "/usr/bin/python3 " +
                          testing::source_path("tests/eval/clip_eval_reference.py") + " " + dir +
                          " > " + dir + "/ref.json";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const nlohmann::json ref = nlohmann::json::parse(std::ifstream(dir + "/ref.json"));
  for (const auto& [key, value] : ref.items()) {
    ASSERT_TRUE(got.contains(key)) << key;
    EXPECT_NEAR(got[key].get<double>(), value.get<double>(), 1e-9) << key;
  }
  EXPECT_EQ(got["n_classes"], K);
  // Trained 150 steps, the captions already pick out their images better than chance.
  EXPECT_GT(got["zero_shot_top1"].get<double>(), 2.0 / double(K)) << got.dump();
  std::printf("trained 150 steps: %s\n", got.dump().c_str());
  EXPECT_GT(got["image_to_text_r10"].get<double>(), 10.0 / double(kN)) << got.dump();
}

TEST(EvalMetrics, TiesCountAgainstTheSample) {
  // A constant score (a collapsed model) ranks every right answer behind its ties: top-1 and,
  // with 6 classes, top-5 are 0.
  TopK acc;
  std::vector<float> scores(3 * 6, 0.5f);
  add_topk(scores, std::vector<int32_t>{0, 1, 5}, 6, acc);
  EXPECT_EQ(acc.top1(), 0.0);
  EXPECT_EQ(acc.top5(), 0.0);
  // A strict winner is top-1; one strictly better competitor makes it top-5 only.
  scores[0 * 6 + 0] = 0.9f;
  scores[1 * 6 + 1] = 0.7f;
  scores[1 * 6 + 4] = 0.8f;
  TopK acc2;
  add_topk(scores, std::vector<int32_t>{0, 1, 5}, 6, acc2);
  EXPECT_NEAR(acc2.top1(), 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(acc2.top5(), 2.0 / 3.0, 1e-12);
  EXPECT_EQ(rank_of(std::vector<float>{0.1f, 0.3f, 0.2f}, 2), 1);
}

}  // namespace
}  // namespace tessera::eval
