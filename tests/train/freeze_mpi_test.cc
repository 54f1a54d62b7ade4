// train.freeze on other layouts (2 ranks): CLIP with its image tower locked trains at DP 2, TP 2
// and DP 2 + ZeRO-1/2/3; the frozen tensors of the final checkpoint equal their initial values
// bitwise and have no optimizer state, and GradSync averaged exactly the trainable gradients
// (allreduce_bytes in metrics.jsonl). optim.layer_decay under ZeRO-1 equals plain DP.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>

#include "models/factory.h"
#include "nlohmann/json.hpp"
#include "tests/distributed/mpi_test_env.h"
#include "tests/train/init_from_support.h"
#include "train/freeze.h"

namespace tessera::train {
namespace {

using testing_support::run_dir;
using testing_support::small_clip;
using testing_support::stored;

// Trains `cfg` for 3 steps on both ranks into a fresh `dir`; returns the final checkpoint.
checkpoint::CheckpointInfo train_both(distributed::Communicator& world, config::Config cfg,
                                      const std::string& dir) {
  cfg.mutable_train()->set_steps(3);
  cfg.mutable_log()->set_every_steps(1);
  if (world.rank() == 0) std::filesystem::remove_all(dir);
  world.barrier()->wait();
  {
    Trainer t(cfg, dir, true, &world);
    EXPECT_EQ(t.run(), kExitOk);
  }
  world.barrier()->wait();
  auto ckpt = checkpoint::open_checkpoint(dir);
  TESSERA_CHECK(ckpt.ok(), ckpt.status().ToString());
  return *ckpt;
}

void expect_locked_at(int tp, int zero) {
  auto world = distributed::testing::test_world(120);
  ASSERT_EQ(world->size(), 2) << "run on 2 ranks";
  const std::string tag = absl::StrCat("tp", tp, "_zero", zero);
  const config::Config cfg =
      small_clip({"train.freeze=image.*", absl::StrCat("parallel.tensor_parallel=", tp),
                  absl::StrCat("parallel.zero_stage=", zero), "parallel.bucket_bytes=20000"});
  const std::string dir = run_dir("freeze_mpi_" + tag);
  const auto ckpt = train_both(*world, cfg, dir);
  if (world->rank() != 0) return;
  // The initial values: one process, the same seed (init depends on names and seed only).
  auto initial = models::make_model(cfg.model());
  freeze_parameters(cfg, initial->params());
  initial->params().init(cfg.train().seed());
  const models::ParamStore& p = initial->params();
  std::set<std::string> with_state;
  for (const auto& t : ckpt.metadata.tensors()) {
    if (t.role() == "adam_m") with_state.insert(t.name());
  }
  int frozen = 0;
  for (size_t id = 0; id < p.infos().size(); ++id) {
    const std::string& n = p.infos()[id].spec.name;
    if (n.rfind("image.", 0) != 0) {
      EXPECT_TRUE(with_state.count(n)) << n << " at " << tag;
      continue;
    }
    ++frozen;
    const std::vector<float> now = stored(ckpt, n);
    EXPECT_EQ(0, std::memcmp(now.data(), p.param(id).raw_data(), now.size() * sizeof(float)))
        << n << " changed at " << tag;
    EXPECT_FALSE(with_state.count(n)) << n << " has optimizer state at " << tag;
  }
  EXPECT_GT(frozen, 10);
  if (tp == 1) {
    // Data parallel over 2 ranks: the bytes averaged per step are the trainable gradients'.
    std::ifstream f(dir + "/metrics.jsonl");
    int rows = 0;
    for (std::string line; std::getline(f, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains("kind")) continue;
      ASSERT_TRUE(j.contains("allreduce_bytes")) << line;
      EXPECT_EQ(j["allreduce_bytes"].get<int64_t>(), 4 * p.trainable_numel()) << tag;
      EXPECT_LT(p.trainable_numel(), p.numel());
      ++rows;
    }
    EXPECT_EQ(rows, 3);
  }
}

TEST(FreezeLayouts, DataParallel2) {
  expect_locked_at(1, 0);
}
TEST(FreezeLayouts, TensorParallel2) {
  expect_locked_at(2, 0);
}
TEST(FreezeLayouts, DataParallel2Zero1) {
  expect_locked_at(1, 1);
}
// ZeRO-2 stages only the trainable gradients (frozen ones keep the store's shared scratch).
TEST(FreezeLayouts, DataParallel2Zero2) {
  expect_locked_at(1, 2);
}

// ZeRO-3 shards the frozen parameters too (one bucket per frozen unit behind the optimizer's
// shards), gathers them for the locked tower's forward and writes them as every rank's pieces.
TEST(FreezeLayouts, DataParallel2Zero3) {
  expect_locked_at(1, 3);
}

TEST(FreezeLayouts, LayerDecayUnderZero1EqualsPlainDataParallel) {
  auto world = distributed::testing::test_world(120);
  const std::vector<std::string> sets = {"optim.layer_decay=0.6", "parallel.bucket_bytes=20000",
                                         "model.clip.image.transformer.n_layers=2"};
  auto with = [&](int zero) {
    std::vector<std::string> s = sets;
    s.push_back(absl::StrCat("parallel.zero_stage=", zero));
    return small_clip(s);
  };
  const auto plain = train_both(*world, with(0), run_dir("layer_decay_dp2"));
  const auto zero = train_both(*world, with(1), run_dir("layer_decay_dp2_zero1"));
  if (world->rank() != 0) return;
  for (const auto& t : plain.metadata.tensors()) {
    if (t.role() != "param") continue;
    const std::vector<float> a = stored(plain, t.name()), b = stored(zero, t.name());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_NEAR(a[i], b[i], 1e-6 + 1e-5 * std::fabs(a[i])) << t.name() << "[" << i << "]";
    }
  }
}

}  // namespace
}  // namespace tessera::train
