// The shared checks of the multi-rank CLIP training tests (clip_training_checks.h).
#include "tests/train/clip_training_checks.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "models/factory.h"
#include "nlohmann/json.hpp"
#include "tests/distributed/mpi_test_env.h"
#include "tests/support/compare.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"
#include "train/config.h"
#include "train/synthetic_data.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

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

}  // namespace

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

std::string run_dir(const std::string& name) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::remove_all(dir);
  return dir.string();
}

void expect_gradient_equals_single(const config::Config& cfg, const ModelSetup& setup) {
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

void expect_grad_cache_gradient_equals_big_batch(const config::Config& cfg, int group_size,
                                                 int64_t M, const ModelSetup& setup) {
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

}  // namespace tessera::train
