// Tensor parallel equals one process: a model split over a TP group of 2 ranks computes the loss
// and, on the slice each rank holds, the gradients of the unsplit model; trained with the
// trainer (TP 2, and TP 2 x DP 2 on 4 ranks) it reaches the unsplit model's parameters.
// Runs under mpirun -np 2 and -np 4 (every TP group checks itself).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "distributed/layout.h"
#include "models/factory.h"
#include "nlohmann/json.hpp"
#include "tests/distributed/mpi_test_env.h"
#include "tests/support/reference.h"
#include "train/config.h"
#include "train/optimizer.h"
#include "train/synthetic_data.h"
#include "train/trainer.h"

#include "tests/train/train_test_support.h"

namespace tessera::train {
namespace {

using testing_support::load;
using testing_support::run_dir;

// The slice [begin, begin + local.shape[d]) along d of a tensor of global shape `global`.
std::vector<float> shard_of(const float* full, const Shape& global, const Shape& local, int d,
                            int64_t begin) {
  if (d < 0) return std::vector<float>(full, full + shape_numel(global));
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= global[i];
  for (size_t i = d + 1; i < global.size(); ++i) inner *= global[i];
  std::vector<float> out;
  out.reserve(size_t(shape_numel(local)));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < local[d]; ++j)
      for (int64_t i = 0; i < inner; ++i)
        out.push_back(full[(o * global[d] + begin + j) * inner + i]);
  return out;
}

// max |a - ref| / max(max |ref|, scale_floor) (0 when both are zero; inf when only ref is).
double rel_diff(const float* a, const std::vector<float>& ref, double scale_floor) {
  double diff = 0, scale = scale_floor;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff = std::max(diff, double(std::fabs(a[i] - ref[i])));
    scale = std::max(scale, double(std::fabs(ref[i])));
  }
  if (scale == 0) return diff == 0 ? 0 : INFINITY;
  return diff / scale;
}

// Checks every parameter of `mine` (this TP rank's shards; `which` = params or grads) against the
// unsplit store `ref` sliced the same way; returns the worst relative difference.
double expect_store_matches(const models::ParamStore& mine, const models::ParamStore& ref,
                            bool grads, double tol, const std::string& what,
                            double scale_floor = 0) {
  double worst = 0;
  for (size_t id = 0; id < mine.infos().size(); ++id) {
    const models::ParamInfo& info = mine.infos()[id];
    const models::ParamId rid = ref.find(info.spec.name);
    EXPECT_GE(rid, 0) << info.spec.name;
    if (rid < 0) continue;
    const Tensor full = grads ? ref.grad(rid) : ref.param(rid);
    const Tensor local = grads ? mine.grad(int(id)) : mine.param(int(id));
    const std::vector<float> slice =
        shard_of(full.data<float>(), info.spec.shape, info.local_shape,
                 mine.tp_size() > 1 ? info.spec.split_dim : -1, info.local_begin);
    const double r = rel_diff(local.data<float>(), slice, scale_floor);
    EXPECT_LE(r, tol) << what << ": " << (grads ? "gradient of " : "") << info.spec.name
                      << " (tp rank " << mine.tp_rank() << ")";
    worst = std::max(worst, r);
  }
  return worst;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, double(std::fabs(t.data<float>()[i])));
  return m;
}

// Replicated parameters (split_dim -1) hold bitwise the same values (`grads`: gradients) on
// every rank of the TP group.
void expect_replicated_identical(const models::ParamStore& store, distributed::Communicator& tp,
                                 bool grads, const std::string& what) {
  const Tensor& buf = grads ? store.grads() : store.params();
  Tensor all = Tensor::empty({tp.size() * buf.numel()}, DType::f32);
  tp.all_gather(buf, all)->wait();
  for (const models::ParamInfo& info : store.infos()) {
    if (info.spec.split_dim >= 0) continue;
    for (int r = 1; r < tp.size(); ++r) {
      EXPECT_EQ(0, std::memcmp(all.data<float>() + info.offset,
                               all.data<float>() + r * buf.numel() + info.offset,
                               size_t(info.numel) * sizeof(float)))
          << what << ": replicated " << (grads ? "gradient " : "") << info.spec.name
          << " differs between tp ranks 0 and " << r;
    }
  }
}

// One forward_backward of the TP-2 model against the unsplit model (built on every rank: tiny).
// warm_steps AdamW steps first (DiT: its adaLN-Zero gates are 0 at init, which would make every
// block gradient trivially zero).
// real_vocab >= 0 (a padded GPT vocabulary): the rows of tok_emb/head at or past it also get
// exactly zero gradient on the rank that holds them.
void expect_gradients_match_unsplit(const config::Config& cfg, const std::string& name,
                                    double tol = 1e-5, int warm_steps = 0,
                                    int64_t real_vocab = -1) {
  auto world = distributed::testing::test_world();
  distributed::ParallelLayout layout(*world, 2);
  const uint64_t seed = cfg.train().seed();
  SyntheticData data(cfg);
  const int64_t batch = cfg.data().global_batch_size();
  // Every TP group sees the same samples; a DP group's replicas differ only by their data slice.
  const models::Batch b = data.batch(layout.dp_rank() * batch, batch);

  auto tp_model = models::make_model(cfg.model(), &layout.tp());
  auto ref_model = models::make_model(cfg.model());
  for (models::Model* m : {tp_model.get(), ref_model.get()}) {
    m->params().init(seed);
    m->set_seed(seed);
    AdamW opt(m->params(), cfg.optim());
    for (int s = 0; s < warm_steps; ++s) {
      m->params().zero_grads();
      m->forward_backward(data.batch((s + 1) * 1000 + layout.dp_rank() * batch, batch), 1.0f);
      opt.step(1e-2);
    }
    m->params().zero_grads();
  }
  if (warm_steps == 0) {  // parameters at init are exact slices
    expect_store_matches(tp_model->params(), ref_model->params(), false, 0.0, name + " init");
  }
  const double loss = tp_model->forward_backward(b, 1.0f).loss;
  const double ref_loss = ref_model->forward_backward(b, 1.0f).loss;

  EXPECT_NEAR(loss, ref_loss, tol * std::fabs(ref_loss)) << name << ": loss";
  // The same loss on every TP rank, bitwise.
  Tensor l = Tensor::empty({layout.tp_size()}, DType::f32), mine = Tensor::empty({1}, DType::f32);
  mine.data<float>()[0] = float(loss);
  layout.tp().all_gather(mine, l)->wait();
  EXPECT_EQ(l.data<float>()[0], l.data<float>()[1]) << name << ": loss differs between tp ranks";
  const double worst =
      expect_store_matches(tp_model->params(), ref_model->params(), true, tol, name);
  expect_replicated_identical(tp_model->params(), layout.tp(), true, name);
  if (real_vocab >= 0) {
    const models::ParamStore& store = tp_model->params();
    int64_t padded_rows = 0;
    for (const char* table : {"tok_emb.weight", "head.weight"}) {
      const models::ParamId id = store.find(table);
      if (id < 0) continue;
      const models::ParamInfo& info = store.info(id);
      const Tensor g = store.grad(id);
      const int64_t C = info.local_shape[1];
      for (int64_t r = std::max<int64_t>(0, real_vocab - info.local_begin); r < info.local_shape[0];
           ++r, ++padded_rows) {
        for (int64_t c = 0; c < C; ++c)
          ASSERT_EQ(g.data<float>()[r * C + c], 0.0f)
              << name << ": gradient of padded row " << info.local_begin + r << " of " << table;
      }
    }
    // The padding lies in the last TP rank's shard.
    if (layout.tp_rank() == layout.tp_size() - 1) {
      EXPECT_GT(padded_rows, 0) << name;
    }
  }
  if (world->rank() == 0) std::printf("%s: worst gradient rel diff %.2e\n", name.c_str(), worst);
  world->barrier()->wait();
}

TEST(TensorParallel, GptGradientsEqualUnsplit) {
  expect_gradients_match_unsplit(load("configs/gpt_tiny.pbtxt", {"data.global_batch_size=4"}),
                                 "gpt");
}

TEST(TensorParallel, GptUntiedHeadGradientsEqualUnsplit) {
  expect_gradients_match_unsplit(
      load("configs/gpt_tiny.pbtxt", {"data.global_batch_size=4", "model.gpt.tie_embedding=false"}),
      "gpt_untied");
}

TEST(TensorParallel, GptWithRecomputeGradientsEqualUnsplit) {
  expect_gradients_match_unsplit(
      load("configs/gpt_tiny.pbtxt",
           {"data.global_batch_size=4", "model.recompute_activations=true"}),
      "gpt_recompute");
}

// GPT-2's situation in miniature: 511 ids do not split over 2 ranks; padded to 512
// (vocab_pad_multiple 8) they do, and the split model equals the unsplit padded one (which
// equals the unpadded model: tests/models/gpt_vocab_padding_test.cc).
TEST(TensorParallel, GptPaddedVocabGradientsEqualUnsplit) {
  for (const char* tied : {"true", "false"}) {
    expect_gradients_match_unsplit(
        load("configs/gpt_tiny.pbtxt",
             {"data.global_batch_size=4", "model.gpt.vocab_size=511",
              "model.gpt.vocab_pad_multiple=8", std::string("model.gpt.tie_embedding=") + tied}),
        std::string("gpt_padded_tied_") + tied, 1e-5, 0, /*real_vocab=*/511);
  }
  // 497 ids padded to 504: the padding is 7 rows of the last rank's 252.
  expect_gradients_match_unsplit(
      load("configs/gpt_tiny.pbtxt", {"data.global_batch_size=4", "model.gpt.vocab_size=497",
                                      "model.gpt.vocab_pad_multiple=8"}),
      "gpt_padded_497", 1e-5, 0, /*real_vocab=*/497);
}

TEST(TensorParallel, VitGradientsEqualUnsplit) {
  expect_gradients_match_unsplit(load("configs/vit_tiny.pbtxt", {"data.global_batch_size=4"}),
                                 "vit");
}

TEST(TensorParallel, ClipGradientsEqualUnsplit) {
  expect_gradients_match_unsplit(load("configs/clip_tiny.pbtxt", {"data.global_batch_size=4"}),
                                 "clip");
}

TEST(TensorParallel, SiglipGradientsEqualUnsplit) {
  expect_gradients_match_unsplit(load("configs/siglip_tiny.pbtxt", {"data.global_batch_size=4"}),
                                 "siglip");
}

TEST(TensorParallel, DitGradientsEqualUnsplit) {
  expect_gradients_match_unsplit(load("configs/dit_tiny.pbtxt", {"data.global_batch_size=4"}),
                                 "dit", 1e-4, /*warm_steps=*/2);
}

// Trainer level: TP 2 (x DP 2 on 4 ranks) against one process on the whole batch, parameters
// compared per shard after a few AdamW steps (grad-norm clipping on, so the TP-global norm
// matters).
// The grad_norm column of a run's metrics.jsonl (training rows).
std::vector<double> grad_norms(const std::string& dir) {
  std::vector<double> out;
  std::ifstream f(dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) {
    auto row = nlohmann::json::parse(line);
    if (!row.contains("kind")) out.push_back(row["grad_norm"].get<double>());
  }
  return out;
}

void expect_trainer_matches_single(const config::Config& cfg, const std::string& name) {
  auto world = distributed::testing::test_world();
  // Run directories per world size: the np2 and np4 runs of this binary may overlap in time.
  const std::string tp_dir = run_dir(name + "_tp_np" + std::to_string(world->size()));
  if (world->rank() == 0) std::filesystem::remove_all(tp_dir);
  world->barrier()->wait();
  Trainer tp(cfg, tp_dir, true, world.get());
  ASSERT_EQ(tp.layout().tp_size(), 2);
  ASSERT_EQ(tp.run(), kExitOk);
  const models::ParamStore& mine = tp.model().params();
  // Replicated parameters agree bitwise over TP; whole shards agree bitwise over DP.
  expect_replicated_identical(mine, tp.layout().tp(), false, name);
  if (tp.layout().dp_size() > 1) {
    const Tensor& p = mine.params();
    Tensor all = Tensor::empty({tp.layout().dp_size() * p.numel()}, DType::f32);
    tp.layout().dp().all_gather(p, all)->wait();
    for (int r = 1; r < tp.layout().dp_size(); ++r) {
      EXPECT_EQ(0, std::memcmp(all.data<float>(), all.data<float>() + r * p.numel(), p.nbytes()))
          << name << ": dp replica " << r << " differs";
    }
  }
  // Every rank runs the unsplit model alone (tiny) and compares its own shard.
  config::Config single_cfg = cfg;
  single_cfg.mutable_parallel()->set_tensor_parallel(1);
  const std::string single_dir = run_dir(name + "_single_np" + std::to_string(world->size()) + "_" +
                                         std::to_string(world->rank()));
  std::filesystem::remove_all(single_dir);
  Trainer single(single_cfg, single_dir, true);
  ASSERT_EQ(single.run(), kExitOk);
  // The global gradient norm (what clipping divides by) per step: AdamW is nearly invariant to a
  // constant gradient scale, so parameters alone would not show a wrong norm.
  if (world->rank() == 0) {
    const auto want = grad_norms(single_dir), got = grad_norms(tp_dir);
    ASSERT_EQ(got.size(), want.size());
    ASSERT_FALSE(want.empty());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-5 * want[i]) << name << " grad_norm, row " << i;
  }
  // Measured against the largest parameter of the model (as the data-parallel test does): a
  // parameter whose gradient is rounding noise around an exact 0 (the attention key bias: softmax
  // ignores a constant added to every score) moves by +-lr under AdamW in either run, whatever
  // its sign, so its own scale would measure noise.
  const double scale = max_abs(single.model().params().params());
  const double worst = expect_store_matches(mine, single.model().params(), false, 1e-5,
                                            name + " after steps", scale);
  if (world->rank() == 0) std::printf("%s: worst parameter rel diff %.2e\n", name.c_str(), worst);
  world->barrier()->wait();
}

// Label smoothing under TP: the logits stay split, the row sums of logits are all-reduced with
// the other loss sums (ops/vocab_parallel.h); a padded vocabulary's padding takes no share.
TEST(TensorParallel, GptWithLabelSmoothingTrainerEqualsOneProcess) {
  expect_trainer_matches_single(
      load("configs/gpt_tiny.pbtxt",
           {"train.steps=3", "data.global_batch_size=8", "parallel.tensor_parallel=2",
            "optim.label_smoothing=0.1", "model.gpt.vocab_size=511",
            "model.gpt.vocab_pad_multiple=8", "log.every_steps=1"}),
      "gpt_smoothing_trainer");
}

// Dropout and drop-path under TP: the branch outputs are whole on every TP rank (after the row
// parallel all-reduce) and keyed alike, so the split model equals the unsplit one.
TEST(TensorParallel, GptWithDropoutTrainerEqualsOneProcess) {
  expect_trainer_matches_single(
      load("configs/gpt_tiny.pbtxt",
           {"train.steps=3", "data.global_batch_size=8", "parallel.tensor_parallel=2",
            "model.dropout=0.1", "model.drop_path=0.2", "log.every_steps=1"}),
      "gpt_dropout_trainer");
}

// Attention-probability dropout under TP: each rank holds whole heads and keys their masks by
// the global head index, and the embedding output is whole on every rank: TP 2 equals one process.
TEST(TensorParallel, GptWithAttentionAndEmbeddingDropoutTrainerEqualsOneProcess) {
  expect_trainer_matches_single(
      load("configs/gpt_tiny.pbtxt",
           {"train.steps=3", "data.global_batch_size=8", "parallel.tensor_parallel=2",
            "model.attention_dropout=0.2", "model.embedding_dropout=0.1", "log.every_steps=1"}),
      "gpt_attn_dropout_trainer");
}

// Knowledge distillation under TP: the teacher (a wider checkpoint trained here first, written
// unsplit) is split over the same TP group, and the soft term is computed from the split logits
// of both models (row maxima and sums all-reduced; the padded vocabulary's last slice holds the
// padding): TP 2 (x DP 2 on 4 ranks) equals one process.
TEST(TensorParallel, GptDistilledTrainerEqualsOneProcess) {
  auto world = distributed::testing::test_world();
  const std::string teacher = run_dir("gpt_tp_teacher_np" + std::to_string(world->size()));
  if (world->rank() == 0) {
    std::filesystem::remove_all(teacher);
    Trainer run(load("configs/gpt_tiny.pbtxt",
                     {"train.steps=2", "data.global_batch_size=8", "model.gpt.vocab_size=511",
                      "model.gpt.vocab_pad_multiple=8", "model.gpt.transformer.d_model=96",
                      "model.gpt.transformer.n_heads=4"}),
                teacher, true);
    ASSERT_EQ(run.run(), kExitOk);
  }
  world->barrier()->wait();
  expect_trainer_matches_single(
      load("configs/gpt_tiny.pbtxt",
           {"train.steps=3", "data.global_batch_size=8", "parallel.tensor_parallel=2",
            "model.gpt.vocab_size=511", "model.gpt.vocab_pad_multiple=8", "optim.grad_clip=0.5",
            "distill.teacher=" + teacher, "distill.alpha=0.25", "distill.temperature=2",
            "log.every_steps=1"}),
      "gpt_distill_trainer");
}

TEST(TensorParallel, GptTrainerEqualsOneProcess) {
  expect_trainer_matches_single(
      load("configs/gpt_tiny.pbtxt",
           {"train.steps=4", "data.global_batch_size=8", "parallel.tensor_parallel=2",
            "optim.grad_clip=0.5", "parallel.bucket_bytes=40000", "log.every_steps=1"}),
      "gpt_trainer");
}

TEST(TensorParallel, GptPaddedVocabTrainerEqualsOneProcess) {
  expect_trainer_matches_single(
      load("configs/gpt_tiny.pbtxt",
           {"train.steps=3", "data.global_batch_size=8", "parallel.tensor_parallel=2",
            "model.gpt.vocab_size=511", "model.gpt.vocab_pad_multiple=8", "optim.grad_clip=0.5",
            "log.every_steps=1"}),
      "gpt_padded_trainer");
}

// A model that does not split over T: the error names the config field and the parameter.
void expect_rejected(const std::vector<std::string>& sets, const std::string& needle) {
  auto world = distributed::testing::test_world();
  config::Config cfg = load("configs/gpt_tiny.pbtxt", sets);
  try {
    Trainer t(cfg, run_dir("bad"), true, world.get());
    ADD_FAILURE() << "no error for " << needle;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("parallel.tensor_parallel = 2"), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << what;
  }
  world->barrier()->wait();
}

// Without padding (the default) 511 ids still do not split over 2 ranks.
TEST(TensorParallel, VocabNotDivisibleIsRejected) {
  expect_rejected({"parallel.tensor_parallel=2", "model.gpt.vocab_size=511"}, "tok_emb.weight");
  expect_rejected(
      {"parallel.tensor_parallel=2", "model.gpt.vocab_size=511", "model.gpt.vocab_pad_multiple=1"},
      "tok_emb.weight");
}

// Padding to a multiple that T does not divide (511 padded to 7 is 511): the error names the
// fields and what to change.
TEST(TensorParallel, PaddedVocabNotDivisibleIsRejected) {
  expect_rejected(
      {"parallel.tensor_parallel=2", "model.gpt.vocab_size=510", "model.gpt.vocab_pad_multiple=7"},
      "model.gpt.vocab_size = 510 padded to model.gpt.vocab_pad_multiple = 7 is 511, not "
      "divisible by tensor_parallel = 2");
}

TEST(TensorParallel, HeadsNotDivisibleIsRejected) {
  expect_rejected({"parallel.tensor_parallel=2", "model.gpt.transformer.n_heads=1"},
                  "1 heads are not divisible by tensor_parallel = 2");
}

}  // namespace
}  // namespace tessera::train
