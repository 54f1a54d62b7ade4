// The moving average of the weights (train/ema.h), through the trainer and its checkpoints:
//   - after N steps it equals an independent computation from the parameters each step saved
//     (decay with warm-up, started from the initial parameters);
//   - a run resumed from a checkpoint ends with the EMA of the uninterrupted run, bitwise;
//   - data parallel with ZeRO-1 (each rank keeps its shard of the EMA), ZeRO-3 (the EMA of the
//     parameters' own shard), and tensor parallel 2,
//     equal one process, and their checkpoints resume in one process (the EMA resharded);
//   - a checkpoint written without an EMA starts the EMA from its parameters.
// Runs under mpirun -np 2.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "checkpoint/checkpoint.h"
#include "models/factory.h"
#include "tests/distributed/mpi_test_env.h"
#include "tests/support/compare.h"
#include "train/ema.h"
#include "train/trainer.h"

#include "tests/train/train_test_support.h"

namespace tessera::train {
namespace {

using testing_support::load;

constexpr int kSteps = 4;

config::Config ema_config(const std::vector<std::string>& more = {}) {
  std::vector<std::string> sets = {"train.steps=4",
                                   "data.global_batch_size=8",
                                   "train.ema_decay=0.9",
                                   "checkpoint.every_steps=1",
                                   "checkpoint.keep_last=10",
                                   "schedule.warmup_steps=1",
                                   "optim.lr=3e-3"};
  sets.insert(sets.end(), more.begin(), more.end());
  return load("configs/vit_tiny.pbtxt", sets);
}

// A fresh run directory, cleared by the world's rank 0 only.
std::string fresh_dir(distributed::Communicator* world, const std::string& name) {
  const std::string dir = testing_support::run_dir(name);
  if (!world || world->rank() == 0) std::filesystem::remove_all(dir);
  if (world) world->barrier()->wait();
  return dir;
}

// The flat (N) tensor of `role` stored in the checkpoint at `path`, in an unsplit model's layout.
Tensor stored(const config::Config& cfg, const std::string& path, const std::string& role) {
  auto info = checkpoint::open_checkpoint(path);
  TESSERA_CHECK(info.ok(), info.status().ToString());
  auto model = models::make_model(cfg.model());
  absl::Status s = checkpoint::load_model_parameters(*info, model->params(), role);
  TESSERA_CHECK(s.ok(), s.ToString());
  Tensor out = Tensor::empty({model->params().numel()}, DType::f32);
  copy(model->params().params(), out);
  return out;
}

std::string step_dir(const std::string& run, int step) {
  return absl::StrCat(run, "/checkpoints/step_", std::string(8 - std::to_string(step).size(), '0'),
                      step);
}

// The initial parameters of `cfg` (a trainer's model before any step).
Tensor initial_params(const config::Config& cfg, const std::string& name) {
  Trainer t(cfg, fresh_dir(nullptr, name), true);
  Tensor init = Tensor::empty({t.model().params().numel()}, DType::f32);
  copy(t.model().params().params(), init);
  return init;
}

// e_0 = init; e_t = d_t e + (1 - d_t) p_t with d_t = min(0.9, (1 + t) / (10 + t)) and p_t the
// parameters the run in `dir` saved after step t (t > `from`); in double.
Tensor independent_ema(const config::Config& cfg, const std::string& dir, const Tensor& init,
                       int from = 0) {
  std::vector<double> e(init.data<float>(), init.data<float>() + init.numel());
  for (int t = from + 1; t <= kSteps; ++t) {
    const Tensor p = stored(cfg, step_dir(dir, t), "param");
    const double d = std::min(0.9, (1.0 + t) / (10.0 + t));
    for (size_t i = 0; i < e.size(); ++i) e[i] = d * e[i] + (1 - d) * p.data<float>()[i];
  }
  Tensor want = Tensor::empty(init.shape(), DType::f32);
  for (size_t i = 0; i < e.size(); ++i) want.data<float>()[i] = float(e[i]);
  return want;
}

TEST(Ema, EqualsAnIndependentAverageOfTheSavedParameters) {
  auto world = distributed::testing::test_world();
  if (world->rank() == 0) {
    const config::Config cfg = ema_config();
    const std::string dir = fresh_dir(nullptr, "ema_independent");
    const Tensor init = initial_params(cfg, "ema_init");
    {
      Trainer t(cfg, dir, true);
      ASSERT_EQ(t.run(), kExitOk);
    }
    const Tensor got = stored(cfg, step_dir(dir, kSteps), "ema");
    EXPECT_TRUE(testing::all_close(got, independent_ema(cfg, dir, init), 1e-6,
                                   "EMA after 4 steps vs independent"));
    // Neither the raw weights nor the start: the average lies between them.
    const Tensor raw = stored(cfg, step_dir(dir, kSteps), "param");
    EXPECT_GT(testing::diff(got, raw).relative(), 1e-5);
    EXPECT_GT(testing::diff(got, init).relative(), 1e-5);
    EXPECT_FLOAT_EQ(Ema::decay_at(0.9999f, true, 1), 2.0f / 11.0f);
    EXPECT_FLOAT_EQ(Ema::decay_at(0.9999f, false, 1), 0.9999f);
  }
  world->barrier()->wait();
}

// Resumed at step 2, the run ends bitwise where the uninterrupted one does: the EMA, and with
// every recipe of docs/RECIPES.md on (mixup/CutMix pairs, label smoothing, dropout and drop-path
// masks: all keyed by seed and position) the parameters too.
void expect_resume_equals_uninterrupted(const config::Config& cfg, const std::string& name) {
  {
    const std::string whole = fresh_dir(nullptr, name + "_whole"),
                      resumed = fresh_dir(nullptr, name + "_resumed");
    {
      Trainer t(cfg, whole, true);
      ASSERT_EQ(t.run(), kExitOk);
    }
    Trainer t(cfg, resumed, true);
    t.set_resume(step_dir(whole, 2));
    ASSERT_EQ(t.run(), kExitOk);
    for (const char* role : {"ema", "param"}) {
      const Tensor a = stored(cfg, step_dir(whole, kSteps), role);
      const Tensor b = stored(cfg, step_dir(resumed, kSteps), role);
      EXPECT_EQ(0, std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()))
          << name << ": resumed " << role << " differs from the uninterrupted run's";
    }
  }
}

TEST(Ema, ResumeEqualsUninterrupted) {
  auto world = distributed::testing::test_world();
  if (world->rank() == 0) expect_resume_equals_uninterrupted(ema_config(), "ema");
  world->barrier()->wait();
}

TEST(Ema, ResumeWithEveryRecipeEqualsUninterrupted) {
  auto world = distributed::testing::test_world();
  if (world->rank() == 0) {
    expect_resume_equals_uninterrupted(
        ema_config({"data.mixup_alpha=0.8", "data.cutmix_alpha=1.0", "optim.label_smoothing=0.1",
                    "model.dropout=0.1", "model.drop_path=0.2"}),
        "recipes");
  }
  world->barrier()->wait();
}

// ZeRO-1 shards the EMA like the optimizer state; ZeRO-3 averages the parameters' own shard (the
// same layout) and writes it as pieces of every rank.
void expect_zero_sharded_ema(int stage) {
  const std::string z = "ZeRO-" + std::to_string(stage);
  auto world = distributed::testing::test_world();
  const config::Config cfg =
      ema_config({"parallel.zero_stage=" + std::to_string(stage), "parallel.bucket_bytes=4096"});
  const std::string zero_dir = fresh_dir(world.get(), "ema_zero" + std::to_string(stage));
  {
    Trainer t(cfg, zero_dir, true, world.get());
    ASSERT_NE(t.layout().dp_size(), 1);
    ASSERT_EQ(t.run(), kExitOk);
  }
  if (world->rank() == 0) {
    config::Config single_cfg = cfg;
    single_cfg.mutable_parallel()->set_zero_stage(0);
    const std::string single = fresh_dir(nullptr, "ema_zero_single" + std::to_string(stage));
    {
      Trainer t(single_cfg, single, true);
      ASSERT_EQ(t.run(), kExitOk);
    }
    // Exact for the ZeRO run's own parameters: every rank's shard was averaged and saved.
    const Tensor zero_ema = stored(cfg, step_dir(zero_dir, kSteps), "ema");
    EXPECT_TRUE(testing::all_close(zero_ema,
                                   independent_ema(cfg, zero_dir, initial_params(cfg, "ema_init0")),
                                   1e-6, z + " EMA vs independent"));
    // Against one process: 1e-5, the data-parallel parameters' own agreement here (Adam turns
    // the rounding noise of gradients that are zero in exact arithmetic into steps of about lr).
    const Tensor want = stored(cfg, step_dir(single, kSteps), "ema");
    EXPECT_TRUE(testing::all_close(zero_ema, want, 1e-5, z + " EMA vs one process"));
    // The ZeRO checkpoint of step 2 resumes in one process without ZeRO.
    const std::string resumed = fresh_dir(nullptr, "ema_zero_resumed" + std::to_string(stage));
    Trainer t(single_cfg, resumed, true);
    t.set_resume(step_dir(zero_dir, 2));
    ASSERT_EQ(t.run(), kExitOk);
    EXPECT_TRUE(testing::all_close(stored(cfg, step_dir(resumed, kSteps), "ema"), want, 1e-5,
                                   "EMA resumed from " + z + " shards in one process"));
  }
  world->barrier()->wait();
}

TEST(Ema, ZeroShardedEqualsOneProcessAndReshards) {
  expect_zero_sharded_ema(1);
}

TEST(Ema, Zero3ShardedEqualsOneProcessAndReshards) {
  expect_zero_sharded_ema(3);
}

// Tensor parallel 2: each rank keeps the EMA of its shards; the checkpoint holds the global
// tensors: the EMA is the exact average of the TP run's own saved parameters, is close to one
// process's, and resumes in one process (continuing exactly from the stored EMA).
TEST(Ema, TensorParallelEqualsOneProcessAndReshards) {
  auto world = distributed::testing::test_world();
  const config::Config cfg = ema_config({"parallel.tensor_parallel=2"});
  const std::string tp_dir = fresh_dir(world.get(), "ema_tp");
  {
    Trainer t(cfg, tp_dir, true, world.get());
    ASSERT_EQ(t.layout().tp_size(), 2);
    ASSERT_EQ(t.run(), kExitOk);
  }
  if (world->rank() == 0) {
    config::Config single_cfg = cfg;
    single_cfg.mutable_parallel()->set_tensor_parallel(1);
    const std::string single = fresh_dir(nullptr, "ema_tp_single");
    {
      Trainer t(single_cfg, single, true);
      ASSERT_EQ(t.run(), kExitOk);
    }
    const Tensor tp_ema = stored(single_cfg, step_dir(tp_dir, kSteps), "ema");
    EXPECT_TRUE(testing::all_close(
        tp_ema, independent_ema(single_cfg, tp_dir, initial_params(single_cfg, "ema_init_tp")),
        1e-6, "TP 2 EMA vs independent"));
    // 1e-4 against one process: TP's split matmuls round differently, and Adam turns the noise
    // of the attention key bias's zero gradient into steps of about lr (1.5e-5 measured).
    EXPECT_TRUE(testing::all_close(tp_ema, stored(single_cfg, step_dir(single, kSteps), "ema"),
                                   1e-4, "TP 2 EMA vs one process"));
    const std::string resumed = fresh_dir(nullptr, "ema_tp_resumed");
    Trainer t(single_cfg, resumed, true);
    t.set_resume(step_dir(tp_dir, 2));
    ASSERT_EQ(t.run(), kExitOk);
    EXPECT_TRUE(testing::all_close(
        stored(single_cfg, step_dir(resumed, kSteps), "ema"),
        independent_ema(single_cfg, resumed, stored(single_cfg, step_dir(tp_dir, 2), "ema"), 2),
        1e-6, "EMA resumed in one process from the TP 2 checkpoint's"));
  }
  world->barrier()->wait();
}

TEST(Ema, StartsFromTheParametersOfACheckpointWithoutOne) {
  auto world = distributed::testing::test_world();
  if (world->rank() == 0) {
    config::Config plain = ema_config({"train.ema_decay=0"});
    const std::string before = fresh_dir(nullptr, "ema_none");
    {
      Trainer t(plain, before, true);
      ASSERT_EQ(t.run(), kExitOk);
    }
    auto info = checkpoint::open_checkpoint(step_dir(before, kSteps));
    ASSERT_TRUE(info.ok());
    EXPECT_FALSE(checkpoint::has_role(*info, "ema"));
    // Resume at step 4 of a run with 5 steps and an EMA: one update from the stored parameters.
    config::Config cfg = ema_config({"train.steps=5"});
    const std::string after = fresh_dir(nullptr, "ema_added");
    Trainer t(cfg, after, true);
    t.set_resume(step_dir(before, kSteps));
    ASSERT_EQ(t.run(), kExitOk);
    const Tensor p4 = stored(cfg, step_dir(before, kSteps), "param");
    const Tensor p5 = stored(cfg, step_dir(after, 5), "param");
    const Tensor got = stored(cfg, step_dir(after, 5), "ema");
    const double d = std::min(0.9, 6.0 / 15.0);  // update t = 5
    Tensor want = Tensor::empty(p4.shape(), DType::f32);
    for (int64_t i = 0; i < p4.numel(); ++i) {
      want.data<float>()[i] = float(d * p4.data<float>()[i] + (1 - d) * p5.data<float>()[i]);
    }
    EXPECT_TRUE(testing::all_close(got, want, 1e-6, "EMA started from the checkpoint"));
  }
  world->barrier()->wait();
}

}  // namespace
}  // namespace tessera::train
