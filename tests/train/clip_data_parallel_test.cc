// Contrastive losses over a data-parallel group (models/distributed_contrastive_loss.h) equal the
// single-process loss on the concatenated batch, and CLIP / SigLIP trained data-parallel equal one
// process. Runs under mpirun -np 4: the loss tests on all 4 ranks and on two groups of 2 (the
// ring with left == right); the training tests on 2 and on 4 data-parallel ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "absl/strings/str_cat.h"
#include "models/clip.h"
#include "models/contrastive_loss.h"
#include "models/distributed_contrastive_loss.h"
#include "models/factory.h"
#include "nlohmann/json.hpp"
#include "ops/contrastive.h"
#include "tests/distributed/mpi_test_env.h"
#include "tests/support/compare.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"
#include "train/config.h"
#include "train/synthetic_data.h"
#include "train/trainer.h"

namespace tessera::models {
namespace {

using config::ClipConfig;

constexpr int64_t kLocal = 3, kEmbed = 8;  // rows per rank, embedding width
constexpr float kScale = 4.5f, kBias = -1.25f, kDloss = 0.75f;

// (B, E) rows of unit length; the same on every rank (keyed by stream only).
Tensor unit_rows(int64_t B, uint64_t stream) {
  Tensor x = testing::normal({B, kEmbed}, stream);
  Tensor y = Tensor::empty({B, kEmbed}, DType::f32), norm = Tensor::empty({B}, DType::f32);
  ops::l2_normalize_forward(x, y, norm);
  return y;
}

Tensor rows_copy(const Tensor& all, int64_t begin, int64_t end) {
  Tensor out = Tensor::empty({end - begin, all.dim(1)}, DType::f32);
  std::memcpy(out.data<float>(), all.slice(begin, end).data<float>(), out.nbytes());
  return out;
}

// Every rank of `group` computes the distributed loss on its rows of one global batch; group rank
// 0 checks the group's averages (loss, dt, dbias) and its gradients divided by the group size
// against contrastive_loss() on the whole batch (see the header: outputs are R times the global
// loss's gradient, so that GradSync's average is exact).
void expect_equals_single(distributed::Communicator& group, ClipConfig::Loss kind, float dloss) {
  const int R = group.size(), r = group.rank();
  const int64_t B = R * kLocal;
  const Tensor img_all = unit_rows(B, 11), txt_all = unit_rows(B, 12);
  const Tensor img = rows_copy(img_all, r * kLocal, (r + 1) * kLocal);
  const Tensor txt = rows_copy(txt_all, r * kLocal, (r + 1) * kLocal);
  Tensor dimg = Tensor::empty({kLocal, kEmbed}, DType::f32);
  Tensor dtxt = Tensor::empty({kLocal, kEmbed}, DType::f32);
  ContrastiveResult mine =
      dloss == 0
          ? distributed_contrastive_loss(kind, group, img, txt, kScale, kBias, 0.0f, Tensor(),
                                         Tensor())
          : distributed_contrastive_loss(kind, group, img, txt, kScale, kBias, dloss, dimg, dtxt);

  Tensor scalars = Tensor::empty({3}, DType::f32);
  scalars.data<float>()[0] = float(mine.loss);
  scalars.data<float>()[1] = float(mine.dt);
  scalars.data<float>()[2] = float(mine.dbias);
  Tensor all_scalars = Tensor::empty({3 * R}, DType::f32);
  Tensor all_dimg = Tensor::empty({B, kEmbed}, DType::f32);
  Tensor all_dtxt = Tensor::empty({B, kEmbed}, DType::f32);
  group.all_gather(scalars, all_scalars)->wait();
  if (dloss != 0) {
    group.all_gather(dimg.view({kLocal * kEmbed}), all_dimg.view({B * kEmbed}))->wait();
    group.all_gather(dtxt.view({kLocal * kEmbed}), all_dtxt.view({B * kEmbed}))->wait();
  }
  if (r != 0) return;

  Tensor ref_dimg = Tensor::empty({B, kEmbed}, DType::f32);
  Tensor ref_dtxt = Tensor::empty({B, kEmbed}, DType::f32);
  ContrastiveResult ref =
      contrastive_loss(kind, img_all, txt_all, 0, kScale, kBias, dloss, ref_dimg, ref_dtxt);
  double loss = 0, dt = 0, dbias = 0;
  for (int q = 0; q < R; ++q) {
    loss += all_scalars.data<float>()[3 * q] / double(R);
    dt += all_scalars.data<float>()[3 * q + 1] / double(R);
    dbias += all_scalars.data<float>()[3 * q + 2] / double(R);
  }
  const std::string what = absl::StrCat(kind == ClipConfig::INFONCE ? "infonce" : "siglip", " on ",
                                        R, " ranks, dloss ", dloss);
  EXPECT_NEAR(loss, ref.loss, 2e-6 * std::fabs(ref.loss)) << what;
  if (dloss == 0) return;
  EXPECT_NEAR(dt, ref.dt, 1e-5 * std::fabs(ref.dt)) << what;
  EXPECT_NEAR(dbias, ref.dbias, 1e-5 * std::fabs(ref.dbias) + 1e-9) << what;
  if (kind == ClipConfig::SIGLIP) {
    EXPECT_GT(std::fabs(ref.dbias), 1e-3) << "bias gradient unused";
  }
  for (int64_t i = 0; i < B * kEmbed; ++i) {
    all_dimg.data<float>()[i] /= float(R);
    all_dtxt.data<float>()[i] /= float(R);
  }
  EXPECT_TRUE(testing::all_close(all_dimg, ref_dimg, 1e-5, what + " dimg"));
  EXPECT_TRUE(testing::all_close(all_dtxt, ref_dtxt, 1e-5, what + " dtxt"));
}

// The world, and the world split into halves of 2 ranks (each half checks itself).
void expect_equals_single_on_groups(ClipConfig::Loss kind, float dloss) {
  auto world = distributed::testing::test_world();
  expect_equals_single(*world, kind, dloss);
  if (world->size() % 2 == 0 && world->size() > 2) {
    auto half = world->split(world->rank() / 2, world->rank(), "half");
    expect_equals_single(*half, kind, dloss);
  }
  world->barrier()->wait();
}

TEST(DistributedContrastiveLoss, GatheredInfoNceEqualsOneProcess) {
  expect_equals_single_on_groups(ClipConfig::INFONCE, kDloss);
}

TEST(DistributedContrastiveLoss, GatheredInfoNceForwardOnly) {
  expect_equals_single_on_groups(ClipConfig::INFONCE, 0.0f);
}

TEST(DistributedContrastiveLoss, RingSigLipEqualsOneProcess) {
  expect_equals_single_on_groups(ClipConfig::SIGLIP, kDloss);
}

TEST(DistributedContrastiveLoss, RingSigLipForwardOnly) {
  expect_equals_single_on_groups(ClipConfig::SIGLIP, 0.0f);
}

}  // namespace
}  // namespace tessera::models

namespace tessera::train {
namespace {

// A CLIP small enough for a few steps per second on one thread per rank.
config::Config tiny_clip(const std::string& loss, const std::vector<std::string>& more) {
  std::vector<std::string> sets = {
      "model.clip.loss=" + loss,
      "model.clip.image.image_size=16",
      "model.clip.image.patch=8",
      "model.clip.image.transformer.d_model=32",
      "model.clip.image.transformer.n_layers=1",
      "model.clip.image.transformer.n_heads=2",
      "model.clip.text.vocab_size=64",
      "model.clip.text.context=8",
      "model.clip.text.transformer.d_model=32",
      "model.clip.text.transformer.n_layers=1",
      "model.clip.text.transformer.n_heads=2",
      "model.clip.embed_dim=16",
      "train.steps=3",
      "data.global_batch_size=8",
      "schedule.warmup_steps=1",
      "log.every_steps=1",
  };
  // Not SigLIP's -10: a batch of 8 would give vanishing gradients.
  if (loss == "SIGLIP") sets.push_back("model.clip.init_logit_bias=-2");
  sets.insert(sets.end(), more.begin(), more.end());
  auto c = load_config(testing::source_path("configs/clip_tiny.pbtxt"), sets);
  TESSERA_CHECK(c.ok(), c.status().ToString());
  return *c;
}

// A fresh run directory (metrics.jsonl appends: a previous run's records must not count).
std::string run_dir(const std::string& name) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::remove_all(dir);
  return dir.string();
}

// The records of metrics.jsonl.
std::vector<nlohmann::json> metrics(const std::string& dir) {
  std::ifstream f(dir + "/metrics.jsonl");
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(f, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

// Each record of `got` has the kind of `want`'s, and its loss and grad_norm within 1e-5 at step 1
// (equal parameters) and 1e-4 later (parameters equal to ~1e-5).
void expect_same_loss_and_grad_norm(const std::vector<nlohmann::json>& got,
                                    const std::vector<nlohmann::json>& want,
                                    const std::string& name) {
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(got[i].value("kind", ""), want[i].value("kind", ""));
    const std::string at = absl::StrCat(name, " step ", want[i]["step"].get<int64_t>(), " ",
                                        want[i].value("kind", "train"));
    for (const char* key : {"loss", "grad_norm"}) {
      if (!want[i].contains(key)) continue;
      const double tol = want[i]["step"].get<int64_t>() == 1 ? 1e-5 : 1e-4;
      const double a = got[i][key].get<double>(), b = want[i][key].get<double>();
      EXPECT_NEAR(a, b, tol * std::fabs(b)) << at << " " << key;
    }
  }
}

// One step's gradient, model level: each rank of the world runs Clip::forward_backward on its
// slice of a global batch with the loss over the world, then the flat gradients are AVERAGED
// (what GradSync does); this must equal one process's gradient on the whole batch. Adam hides a
// wrong overall gradient scale (it is scale invariant), so this is the check of the scaling.
// `setup` (optional) runs on every model made here (a distillation teacher).
using ModelSetup = std::function<void(models::Clip&)>;

void expect_gradient_equals_single(const config::Config& cfg, const ModelSetup& setup = {}) {
  auto world = distributed::testing::test_world();
  const int R = world->size();
  const int64_t G = cfg.data().global_batch_size(), Bl = G / R;
  SyntheticData data(cfg);
  auto model = models::make_model(cfg.model());
  model->params().init(cfg.train().seed());
  dynamic_cast<models::Clip&>(*model).set_data_parallel(world.get());
  if (setup) setup(dynamic_cast<models::Clip&>(*model));
  model->params().zero_grads();
  const float kLossScale = 0.5f;
  const double loss = model->forward_backward(data.batch(world->rank() * Bl, Bl), kLossScale).loss;
  Tensor grads = model->params().grads();
  world->all_reduce(grads, distributed::ReduceOp::kAvg)->wait();
  Tensor losses = Tensor::empty({1}, DType::f32);
  losses.data<float>()[0] = float(loss);
  world->all_reduce(losses, distributed::ReduceOp::kAvg)->wait();
  if (world->rank() == 0) {
    auto single = models::make_model(cfg.model());
    single->params().init(cfg.train().seed());
    if (setup) setup(dynamic_cast<models::Clip&>(*single));
    single->params().zero_grads();
    const double ref_loss = single->forward_backward(data.batch(0, G), kLossScale).loss;
    EXPECT_NEAR(losses.data<float>()[0], ref_loss, 2e-6 * std::fabs(ref_loss));
    const Tensor& ref = single->params().grads();
    EXPECT_TRUE(testing::all_close(grads, ref, 1e-5, "averaged gradient vs one process"));
    for (const char* scalar : {"logit_scale", "logit_bias"}) {
      const models::ParamId id = single->params().find(scalar);
      if (id < 0) continue;
      const float a = model->params().grad(id).data<float>()[0];
      const float b = single->params().grad(id).data<float>()[0];
      EXPECT_NEAR(a, b, 1e-5 * std::fabs(b)) << scalar;
      EXPECT_GT(std::fabs(b), 1e-6) << scalar << ": no gradient to compare";
    }
  }
  world->barrier()->wait();
}

TEST(ClipDataParallel, InfoNceGradientEqualsOneProcess) {
  expect_gradient_equals_single(tiny_clip("INFONCE", {}));
}

TEST(ClipDataParallel, SigLipGradientEqualsOneProcess) {
  expect_gradient_equals_single(tiny_clip("SIGLIP", {}));
}

// Trains `cfg` data-parallel over groups of `dp` ranks (the world split into world/dp groups,
// each training the same run on its own) and alone on world rank 0; checks that the ranks of a
// group agree bitwise and that group 0 equals the single process: every logged loss, eval loss
// and gradient norm to 1e-5 relative at step 1 (1e-4 later; the norm is of the AVERAGED gradient,
// so a wrong scale shows there even though Adam's update would hide it), the parameters after the
// run to 1e-5.
void expect_dp_equals_single(const config::Config& cfg, int dp, const std::string& name) {
  auto world = distributed::testing::test_world();
  ASSERT_EQ(world->size() % dp, 0);
  const int color = world->rank() / dp;
  auto group = world->split(color, world->rank(), "group");
  // Only the group's writer (its rank 0) may clear the directory it is about to write.
  const std::string dp_name = absl::StrCat(name, "_dp", dp, "_", color);
  const std::string dp_dir = group->rank() == 0
                                 ? run_dir(dp_name)
                                 : (std::filesystem::path(::testing::TempDir()) / dp_name).string();
  Trainer trainer(cfg, dp_dir, true, group.get());
  ASSERT_EQ(trainer.layout().dp_size(), dp);
  ASSERT_EQ(trainer.run(), kExitOk);
  const Tensor& mine = trainer.model().params().params();

  Tensor all = Tensor::empty({group->size() * mine.numel()}, DType::f32);
  group->all_gather(mine, all)->wait();
  for (int r = 1; r < group->size(); ++r) {
    EXPECT_EQ(0,
              std::memcmp(all.data<float>(), all.data<float>() + r * mine.numel(), mine.nbytes()))
        << name << ": rank " << r << " of the group differs from its rank 0";
  }
  if (world->rank() == 0) {
    const std::string single_dir = run_dir(name + "_single");
    Trainer single(cfg, single_dir, true);
    ASSERT_EQ(single.run(), kExitOk);
    const Tensor& ref = single.model().params().params();
    // The run must have moved the parameters for the comparison to mean anything.
    Tensor init = Tensor::empty(ref.shape(), DType::f32);
    {
      Trainer fresh(cfg, run_dir(name + "_fresh"), true);
      std::memcpy(init.data<float>(), fresh.model().params().params().data<float>(), init.nbytes());
    }
    EXPECT_GT(testing::diff(ref, init).relative(), 1e-4) << name << ": training did not move";
    const testing::Diff d = testing::diff(mine, ref);
    std::string where;
    for (const auto& info : single.model().params().infos()) {
      if (d.worst >= info.offset && d.worst < info.offset + info.numel) where = info.spec.name;
    }
    // Not 1e-6 as for GPT: the distributed loss adds its terms in another order than the
    // single-process one, and Adam turns the rounding noise of gradients that are zero in exact
    // arithmetic (the attention key bias) into steps of about lr.
    EXPECT_LT(d.relative(), 1e-5) << name << ": data parallel on " << dp
                                  << " ranks vs one process; worst in " << where << " ("
                                  << mine.data<float>()[d.worst] << " vs "
                                  << ref.data<float>()[d.worst] << ")";
    const auto m1 = metrics(dp_dir), m0 = metrics(single_dir);
    ASSERT_EQ(m1.size(), m0.size()) << name;
    ASSERT_GE(m0.size(), size_t(cfg.train().steps()));
    expect_same_loss_and_grad_norm(m1, m0, name);
  }
  world->barrier()->wait();
}

// GradCache (models/clip.h, train/grad_cache.h): accumulation over micro-batches keeps the whole
// batch's negatives. Model level: on a data-parallel group of R ranks, each rank embeds its
// slices of M micro-batches (the trainer's order: micro-batch mb, rank r holds global rows
// [mb*G/M + r*G/(M R), ...)), scores all of them together and backpropagates each micro-batch;
// the gradients averaged over the group equal one process's forward_backward on the whole batch.
void expect_grad_cache_gradient_equals_big_batch(const config::Config& cfg, int group_size,
                                                 int64_t M, const ModelSetup& setup = {}) {
  auto world = distributed::testing::test_world();
  auto group = world->split(world->rank() / group_size, world->rank(), "group");
  const int R = group->size();
  const int64_t G = cfg.data().global_batch_size(), micro = G / M, local = micro / R;
  SyntheticData data(cfg);
  auto model = models::make_model(cfg.model());
  model->params().init(cfg.train().seed());
  auto& clip = dynamic_cast<models::Clip&>(*model);
  clip.set_data_parallel(group.get());
  if (setup) setup(clip);
  model->params().zero_grads();
  std::vector<models::Batch> batches;
  for (int64_t mb = 0; mb < M; ++mb) {
    batches.push_back(data.batch(mb * micro + group->rank() * local, local));
    clip.cache_embeddings(batches.back());
  }
  const float kLossScale = 0.5f;
  const models::LossResult r = clip.cached_loss(kLossScale);
  EXPECT_EQ(r.count, M * local);
  // Any order of the recomputed micro-batches: backward last to first.
  for (int64_t mb = M - 1; mb >= 0; --mb) clip.cached_backward(mb, batches[mb]);
  Tensor grads = model->params().grads();
  group->all_reduce(grads, distributed::ReduceOp::kAvg)->wait();
  Tensor losses = Tensor::empty({1}, DType::f32);
  losses.data<float>()[0] = float(r.loss);
  group->all_reduce(losses, distributed::ReduceOp::kAvg)->wait();
  if (group->rank() == 0) {
    const std::string what = absl::StrCat(models::model_kind(cfg), " ",
                                          config::ClipConfig::Loss_Name(cfg.model().clip().loss()),
                                          ": ", M, " micro-batches on ", R, " ranks");
    auto single = models::make_model(cfg.model());
    single->params().init(cfg.train().seed());
    if (setup) setup(dynamic_cast<models::Clip&>(*single));
    single->params().zero_grads();
    const double ref_loss = single->forward_backward(data.batch(0, G), kLossScale).loss;
    EXPECT_NEAR(losses.data<float>()[0], ref_loss, 2e-6 * std::fabs(ref_loss)) << what;
    EXPECT_TRUE(testing::all_close(grads, single->params().grads(), 1e-5,
                                   what + ": gradient vs one big batch"));
    for (const char* scalar : {"logit_scale", "logit_bias"}) {
      const models::ParamId id = single->params().find(scalar);
      if (id < 0) continue;
      const float a = grads.data<float>()[single->params().info(id).offset];
      const float b = single->params().grad(id).data<float>()[0];
      EXPECT_NEAR(a, b, 1e-5 * std::fabs(b)) << what << " " << scalar;
      EXPECT_GT(std::fabs(b), 1e-6) << scalar << ": no gradient to compare";
    }
    // Plain accumulation (each micro-batch its own negatives) differs clearly: the test can fail.
    auto plain = models::make_model(cfg.model());
    plain->params().init(cfg.train().seed());
    if (setup) setup(dynamic_cast<models::Clip&>(*plain));
    plain->params().zero_grads();
    for (int64_t mb = 0; mb < M; ++mb) {
      plain->forward_backward(data.batch(mb * micro, micro), kLossScale / float(M));
    }
    EXPECT_GT(testing::diff(plain->params().grads(), single->params().grads()).relative(), 1e-3)
        << what << ": per-micro-batch negatives give the same gradient; the test cannot tell";
  }
  world->barrier()->wait();
}

TEST(ClipGradCache, InfoNceGradientEqualsOneBigBatch) {
  for (int ranks : {1, 2}) {
    for (int64_t M : {2, 4}) {
      expect_grad_cache_gradient_equals_big_batch(
          tiny_clip("INFONCE", {"data.global_batch_size=16"}), ranks, M);
    }
  }
}

TEST(ClipGradCache, SigLipGradientEqualsOneBigBatch) {
  for (int ranks : {1, 2}) {
    for (int64_t M : {2, 4}) {
      expect_grad_cache_gradient_equals_big_batch(
          tiny_clip("SIGLIP", {"data.global_batch_size=16"}), ranks, M);
    }
  }
}

// Trainer level, per layout: the same run with train.micro_batches = M and with 1 reaches the
// same parameters (each rank's own shards, to 1e-5 of their scale) through the same losses and
// gradient norms (1e-5 at step 1, 1e-4 later). The world is split into groups of `group_size`
// ranks, each group training both runs on its own layout (`sets`: TP, ZeRO-1).
void expect_accumulated_run_equals_big_batch(const std::string& loss, int group_size, int64_t M,
                                             const std::vector<std::string>& sets,
                                             const std::string& name) {
  auto world = distributed::testing::test_world();
  const int color = world->rank() / group_size;
  auto group = world->split(color, world->rank(), "group");
  // No evaluation: it scores batches of one micro-batch's size, so its contrastive loss depends
  // on train.micro_batches by design.
  std::vector<std::string> common = {"data.global_batch_size=16", "eval.every_steps=0"};
  common.insert(common.end(), sets.begin(), sets.end());
  auto with_micro = [&](int64_t m) {
    std::vector<std::string> all = common;
    all.push_back(absl::StrCat("train.micro_batches=", m));
    return tiny_clip(loss, all);
  };
  auto train = [&](const config::Config& cfg, const std::string& run) {
    const std::string dir_name = absl::StrCat(name, "_", run, "_", color);
    const std::string dir = group->rank() == 0
                                ? run_dir(dir_name)
                                : (std::filesystem::path(::testing::TempDir()) / dir_name).string();
    auto trainer = std::make_unique<Trainer>(cfg, dir, true, group.get());
    EXPECT_EQ(trainer->run(), kExitOk) << name;
    return std::make_pair(std::move(trainer), dir);
  };
  auto [acc, acc_dir] = train(with_micro(M), "acc");
  auto [big, big_dir] = train(with_micro(1), "big");
  const Tensor& mine = acc->model().params().params();
  const Tensor& ref = big->model().params().params();
  const testing::Diff d = testing::diff(mine, ref);
  std::string where;
  for (const auto& info : big->model().params().infos()) {
    if (d.worst >= info.offset && d.worst < info.offset + info.numel) where = info.spec.name;
  }
  EXPECT_LT(d.relative(), 1e-5) << name << " (group rank " << group->rank() << "): " << M
                                << " micro-batches vs 1; worst in " << where;
  if (acc->layout().tp_size() == 1) {  // TP shards do not compare with an unsplit model
    Trainer fresh(with_micro(1), run_dir(absl::StrCat(name, "_fresh_", world->rank())), true);
    EXPECT_GT(testing::diff(ref, fresh.model().params().params()).relative(), 1e-4)
        << name << ": training did not move";
  }
  if (group->rank() == 0) {
    const auto m1 = metrics(acc_dir), m0 = metrics(big_dir);
    ASSERT_EQ(m1.size(), m0.size()) << name;
    ASSERT_GE(m0.size(), size_t(3));
    expect_same_loss_and_grad_norm(m1, m0, name);
  }
  world->barrier()->wait();
}

// One rank (every world rank alone), 4 micro-batches.
TEST(ClipGradCache, InfoNceTrainerOneRank) {
  expect_accumulated_run_equals_big_batch("INFONCE", 1, 4, {}, "gc_infonce_1");
}
TEST(ClipGradCache, SigLipTrainerOneRank) {
  expect_accumulated_run_equals_big_batch("SIGLIP", 1, 4, {}, "gc_siglip_1");
}
// Two data-parallel ranks, plain and ZeRO-1.
TEST(ClipGradCache, InfoNceTrainerTwoRanks) {
  expect_accumulated_run_equals_big_batch("INFONCE", 2, 2, {}, "gc_infonce_2");
}
TEST(ClipGradCache, SigLipTrainerTwoRanksZero1) {
  expect_accumulated_run_equals_big_batch("SIGLIP", 2, 2, {"parallel.zero_stage=1"},
                                          "gc_siglip_2z");
}
// With dropout and drop-path: the recomputed forward draws the embedding pass's masks (keyed by
// position), 1 rank and DP 2.
TEST(ClipGradCache, InfoNceTrainerWithDropout) {
  expect_accumulated_run_equals_big_batch(
      "INFONCE", 1, 2, {"model.dropout=0.1", "model.drop_path=0.2"}, "gc_infonce_drop_1");
  expect_accumulated_run_equals_big_batch(
      "INFONCE", 2, 2, {"model.dropout=0.1", "model.drop_path=0.2"}, "gc_infonce_drop_2");
}
// Tensor parallel 2 (one DP rank), and TP 2 x DP 2.
TEST(ClipGradCache, InfoNceTrainerTensorParallel) {
  expect_accumulated_run_equals_big_batch("INFONCE", 2, 2, {"parallel.tensor_parallel=2"},
                                          "gc_infonce_tp");
}
TEST(ClipGradCache, SigLipTrainerTensorParallelTimesDataParallel) {
  expect_accumulated_run_equals_big_batch("SIGLIP", 4, 2, {"parallel.tensor_parallel=2"},
                                          "gc_siglip_tpdp");
}

TEST(ClipDataParallel, InfoNceOnTwoRanksEqualsOneProcess) {
  expect_dp_equals_single(tiny_clip("INFONCE", {"eval.every_steps=3", "eval.batches=1"}), 2,
                          "infonce");
}

TEST(ClipDataParallel, SigLipOnTwoRanksEqualsOneProcess) {
  expect_dp_equals_single(tiny_clip("SIGLIP", {"eval.every_steps=3", "eval.batches=1"}), 2,
                          "siglip");
}

TEST(ClipDataParallel, InfoNceOnFourRanksWithAccumulationEqualsOneProcess) {
  expect_dp_equals_single(
      tiny_clip("INFONCE", {"train.micro_batches=2", "data.global_batch_size=16"}), 4,
      "infonce_acc");
}

TEST(ClipDataParallel, SigLipOnFourRanksWithAccumulationEqualsOneProcess) {
  expect_dp_equals_single(
      tiny_clip("SIGLIP", {"train.micro_batches=2", "data.global_batch_size=16"}), 4, "siglip_acc");
}

// Knowledge distillation (models/clip_distillation.h). Model level: a wider teacher of another
// embed_dim and logit scale (and bias) on every model: the distilled loss over DP 4 and 2 ranks
// equals one process (gradients averaged, 1e-5; the scalars' too), and GradCache with 2 and 4
// micro-batches on 1 and 2 ranks equals one big batch (the teacher's embeddings cached per
// micro-batch; plain accumulation differs).
ModelSetup with_teacher(const config::Config& student, float alpha) {
  return [student, alpha](models::Clip& clip) {
    config::ClipConfig t = student.model().clip();
    t.mutable_image()->mutable_transformer()->set_d_model(48);
    t.mutable_text()->mutable_transformer()->set_d_model(40);
    t.set_embed_dim(24);
    t.set_init_logit_scale(std::log(30.0f));
    t.set_init_logit_bias(-3.0f);
    auto teacher = std::make_unique<models::Clip>(t, false);
    teacher->params().init(77);
    clip.set_teacher(std::move(teacher), alpha, 2.0f);
  };
}

TEST(ClipDistillation, InfoNceGradientEqualsOneProcess) {
  const config::Config cfg = tiny_clip("INFONCE", {});
  expect_gradient_equals_single(cfg, with_teacher(cfg, 0.3f));
}

TEST(ClipDistillation, SigLipGradientEqualsOneProcess) {
  const config::Config cfg = tiny_clip("SIGLIP", {});
  expect_gradient_equals_single(cfg, with_teacher(cfg, 0.3f));
}

TEST(ClipDistillation, GradCacheEqualsOneBigBatch) {
  for (const char* loss : {"INFONCE", "SIGLIP"}) {
    const config::Config cfg = tiny_clip(loss, {"data.global_batch_size=16"});
    for (int ranks : {1, 2}) {
      for (int64_t M : {2, 4}) {
        expect_grad_cache_gradient_equals_big_batch(cfg, ranks, M, with_teacher(cfg, 0.3f));
      }
    }
    // alpha = 0: the soft term alone.
    expect_grad_cache_gradient_equals_big_batch(cfg, 2, 2, with_teacher(cfg, 0.0f));
  }
}

// Trainer level: a teacher checkpoint (a wider CLIP or SigLIP, trained here first) loaded by
// distill.teacher; DP 2 and DP 4 equal one process, GradCache M = 2 equals M = 1 under DP 2 and
// TP 2, and the teacher changes the loss.
std::string train_teacher(const std::string& loss) {
  auto world = distributed::testing::test_world();
  // Only rank 0 clears and writes the directory; the others read it after the barrier.
  const std::string name = "clip_teacher_" + loss;
  const std::string dir = world->rank() == 0
                              ? run_dir(name)
                              : (std::filesystem::path(::testing::TempDir()) / name).string();
  if (world->rank() == 0) {
    Trainer t(
        tiny_clip(loss, {"train.steps=2", "model.clip.image.transformer.d_model=48",
                         "model.clip.text.transformer.d_model=40", "model.clip.embed_dim=24"}),
        dir, true);
    EXPECT_EQ(t.run(), kExitOk);
  }
  world->barrier()->wait();
  return dir;
}

std::vector<std::string> distill_sets(const std::string& teacher) {
  return {"distill.teacher=" + teacher, "distill.alpha=0.3", "distill.temperature=2"};
}

TEST(ClipDistillation, TrainerDataParallelEqualsOneProcess) {
  for (const std::string loss : {"INFONCE", "SIGLIP"}) {
    const std::string teacher = train_teacher(loss);
    const config::Config cfg = tiny_clip(loss, distill_sets(teacher));
    expect_dp_equals_single(cfg, 2, "distill_" + loss);
    expect_dp_equals_single(cfg, 4, "distill_" + loss);
    auto world = distributed::testing::test_world();
    if (world->rank() == 0) {
      Trainer with(cfg, run_dir("distill_with_" + loss), true);
      Trainer without(tiny_clip(loss, {}), run_dir("distill_without_" + loss), true);
      SyntheticData data(cfg);
      const models::Batch batch = data.batch(0, 8);
      EXPECT_GT(std::fabs(with.model().forward_backward(batch, 1.0f).loss -
                          without.model().forward_backward(batch, 1.0f).loss),
                1e-4)
          << loss << ": the teacher does not change the loss";
      // A teacher the student cannot use is refused, naming its checkpoint.
      std::vector<std::string> bad = distill_sets(teacher);
      bad.push_back("model.clip.text.vocab_size=100");
      try {
        Trainer t(tiny_clip(loss, bad), run_dir("distill_bad_" + loss), true);
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("distill.teacher " + teacher +
                                             ": Clip: a distillation teacher must read the "
                                             "student's text (vocab_size 100"),
                  std::string::npos)
            << e.what();
      }
    }
    world->barrier()->wait();
  }
}

TEST(ClipDistillation, TrainerGradCacheEqualsBigBatch) {
  const std::string infonce = train_teacher("INFONCE");
  expect_accumulated_run_equals_big_batch("INFONCE", 2, 2, distill_sets(infonce),
                                          "gc_distill_infonce_2");
  std::vector<std::string> tp = distill_sets(infonce);
  tp.push_back("parallel.tensor_parallel=2");
  expect_accumulated_run_equals_big_batch("INFONCE", 2, 2, tp, "gc_distill_infonce_tp");
  const std::string siglip = train_teacher("SIGLIP");
  std::vector<std::string> tpdp = distill_sets(siglip);
  tpdp.push_back("parallel.tensor_parallel=2");
  expect_accumulated_run_equals_big_batch("SIGLIP", 4, 2, tpdp, "gc_distill_siglip_tpdp");
}

}  // namespace
}  // namespace tessera::train
