// ZeRO-3 shard-only start on 2 and 4 ranks (ctest train_zero3_start_test and _np4): each rank
// initialises and restores only its shard ranges (models::ParamStore::init_shards, the sharded
// path of checkpoint::load_model_parameters / load_parameters_from), never the full parameters.
//   - the sharded init equals a full init then shard_params() bitwise, and gathered whole equals
//     the unsharded init, for GPT, ViT, CLIP (image tower frozen: frozen units) and DiT, on DP n,
//     DP 2 (a sub-group on 4 ranks), TP 2 x DP 2 (4 ranks) and with bf16 compute;
//   - a shard-only restore (and init_from) of checkpoints written at stages 0, 1, 2 and 3 on other
//     DP sizes equals the full restore's slices bitwise;
//   - a stage-3 trainer resumed from those checkpoints trains the same next steps as stage 0 at
//     the same layout, and its store never held more parameter bytes than its shard
//     (ParamStore::param_bytes_peak; a full buffer would be 4 N bytes); the checkpoints record
//     the stage that wrote them (layout.zero_stage).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include "checkpoint/checkpoint.h"
#include "distributed/layout.h"
#include "distributed/zero_shards.h"
#include "models/factory.h"
#include "nlohmann/json.hpp"
#include "tests/distributed/mpi_test_env.h"
#include "tests/train/layout_runs.h"
#include "tests/train/train_test_support.h"
#include "train/freeze.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

using testing_support::load;
using testing_support::losses;
using testing_support::run_dir;

constexpr int64_t kBucketBytes = 2000;  // many buckets: ranges cut inside parameters

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()) == 0;
}

// The world's first `ranks` ranks as a group (nullptr on the others); the world itself when all.
struct Group {
  std::unique_ptr<distributed::Communicator> owned;
  distributed::Communicator* comm = nullptr;
};
Group first_ranks(distributed::Communicator& world, int ranks) {
  Group g;
  const bool member = world.rank() < ranks;
  if (ranks == world.size()) {
    g.comm = &world;
    return g;
  }
  g.owned = world.split(member ? 0 : 1, world.rank(), "group");
  if (member) g.comm = g.owned.get();
  return g;
}

// The model of `cfg` on `layout`'s TP group, train.freeze applied, compute dtype set: what the
// trainer builds before any parameter value exists.
std::unique_ptr<models::Model> build(const config::Config& cfg,
                                     const distributed::ParallelLayout& layout) {
  auto model =
      models::make_model(cfg.model(), layout.tp_size() > 1 ? &layout.tp() : nullptr, Device::cpu());
  freeze_parameters(cfg, model->params());
  if (cfg.train().precision() == config::TrainConfig::BF16) {
    model->params().set_compute_dtype(DType::bf16);
  }
  return model;
}

// ZeroAdamW's stage-3 layout (train/zero_optimizer.cc).
distributed::ZeroShards stage3_shards(const models::ParamStore& s,
                                      const distributed::ParallelLayout& l) {
  return distributed::ZeroShards(s.trainable_numel(), kBucketBytes, l.dp_size(), l.dp_rank(),
                                 s.unit_bounds());
}

// Sharded init == full init + shard (bitwise), gathered == the unsharded init, and the
// shard-only store never held more than its shard.
void expect_sharded_init(const std::string& what, const config::Config& cfg,
                         distributed::Communicator& group, int tp) {
  distributed::ParallelLayout layout(group, tp);
  const uint64_t seed = 1234;
  auto full = build(cfg, layout), only = build(cfg, layout), ref = build(cfg, layout);
  models::ParamStore &f = full->params(), &s = only->params(), &r = ref->params();
  f.init(seed);
  r.init(seed);
  f.shard_params(&layout.dp(), stage3_shards(f, layout));
  s.shard_params(&layout.dp(), stage3_shards(s, layout));
  s.init_shards(seed);
  EXPECT_TRUE(same_bits(f.param_shards(), s.param_shards()))
      << what << ": rank " << group.rank() << "'s sharded init differs from init + shard";
  // Never the full buffer: only the shard (a full init + shard held 4 N bytes first).
  EXPECT_EQ(s.param_bytes_peak(), int64_t(s.param_shards().nbytes())) << what;
  EXPECT_GE(f.param_bytes_peak(), 4 * f.numel()) << what;
  EXPECT_TRUE(same_bits(s.gather_full(), r.params())) << what << ": gathered whole";
}

config::Config tiny(const std::string& model) {
  if (model == "clip") {
    return load("configs/clip_tiny.pbtxt",
                {"model.clip.image.transformer.n_layers=1",
                 "model.clip.text.transformer.n_layers=1", "train.freeze=image.*"});
  }
  return load("configs/" + model + "_tiny.pbtxt");
}

TEST(Zero3Start, ShardedInitEqualsFullInitThenShardBitwise) {
  auto world = distributed::testing::test_world(120);
  const int n = world->size();
  for (const std::string model : {"gpt", "vit", "clip", "dit"}) {
    const config::Config cfg = tiny(model);
    expect_sharded_init(model + " dp" + std::to_string(n), cfg, *world, 1);
    if (n == 4) {
      expect_sharded_init(model + " tp2 x dp2", cfg, *world, 2);
      Group two = first_ranks(*world, 2);
      if (two.comm) expect_sharded_init(model + " dp2 of 4", cfg, *two.comm, 1);
      world->barrier()->wait();
    }
  }
  config::Config bf16 = tiny("gpt");
  bf16.mutable_train()->set_precision(config::TrainConfig::BF16);
  expect_sharded_init("gpt bf16", bf16, *world, 1);
}

struct RunAt {
  int ranks, stage;
  std::string name() const { return absl::StrCat("dp", ranks, "_zero", stage); }
};

// Trains `cfg` at `run` on the first run.ranks ranks (resuming from `resume`, may be empty); the
// others wait. Returns on members whether the store stayed within its shard (stage 3) and
// checks that much itself.
void train_at(distributed::Communicator& world, config::Config cfg, const RunAt& run,
              const std::string& dir, const std::string& resume) {
  cfg.mutable_parallel()->set_zero_stage(run.stage);
  Group g = first_ranks(world, run.ranks);
  if (g.comm) {
    Trainer t(cfg, dir, true, run.ranks == 1 ? nullptr : g.comm);
    if (!resume.empty()) t.set_resume(resume);
    EXPECT_EQ(t.run(), kExitOk) << run.name();
    const models::ParamStore& s = t.model().params();
    if (run.stage == 3 && run.ranks > 1) {
      EXPECT_TRUE(s.params_sharded());  // EXPECT: every rank must reach the barrier below
      EXPECT_EQ(s.param_bytes_peak(), int64_t(s.param_shards().nbytes()))
          << run.name() << " from '" << resume << "': the store held more than its shard";
      EXPECT_LT(s.param_bytes_peak(), 4 * s.numel());
    }
  }
  world.barrier()->wait();
}

config::Config resume_config(const std::string& model) {
  config::Config cfg = model == "clip" ? tiny("clip") : load("configs/" + model + "_tiny.pbtxt");
  cfg.mutable_data()->set_global_batch_size(8);
  cfg.mutable_train()->set_steps(4);
  cfg.mutable_train()->set_micro_batches(1);
  cfg.mutable_train()->set_deterministic(true);
  cfg.mutable_train()->set_peak_flops(1e9);
  cfg.mutable_checkpoint()->set_every_steps(1);
  cfg.mutable_checkpoint()->set_keep_last(0);
  cfg.mutable_log()->set_every_steps(1);
  cfg.mutable_parallel()->set_bucket_bytes(kBucketBytes);
  return cfg;
}

// The checkpoints every resume test starts from: stages 0-3 on other DP sizes than n.
std::vector<RunAt> sources(int n) {
  if (n == 2) return {{2, 0}, {2, 1}, {2, 2}, {1, 0}};
  return {{4, 0}, {2, 1}, {4, 2}, {2, 3}};
}

// Checkpoints of stages 0-3, resumed at stage 3 on all ranks: the same steps as stage 0 there
// (one micro-batch: bitwise, docs/DISTRIBUTED.md "Stage 3"), within the shard all along.
void expect_resume(const std::string& model) {
  auto world = distributed::testing::test_world(240);
  const int n = world->size();
  const config::Config cfg = resume_config(model);
  for (const RunAt& src : sources(n)) {
    const std::string base = run_dir(model + "_src_" + src.name());
    train_at(*world, cfg, src, base, "");
    const std::string from = base + "/checkpoints/step_00000002";
    // Rank 0's checks in functions of their own: an ASSERT ends the lambda, not the test, so
    // rank 0 still takes part in the runs and the barrier below (tests/train/rank_agreement.h).
    if (world->rank() == 0)
      [&] {
        auto ckpt = checkpoint::open_checkpoint(from);
        ASSERT_TRUE(ckpt.ok()) << ckpt.status();
        EXPECT_EQ(ckpt->metadata.layout().zero_stage(), src.ranks > 1 ? src.stage : 0)
            << src.name() << ": layout.zero_stage records the stage that wrote it";
      }();
    const RunAt three{n, 3}, zero{n, 0};
    const std::string d3 = run_dir(model + "_z3_from_" + src.name());
    const std::string d0 = run_dir(model + "_z0_from_" + src.name());
    train_at(*world, cfg, three, d3, from);
    train_at(*world, cfg, zero, d0, from);
    if (world->rank() == 0)
      [&] {
        const auto got = losses(d3), want = losses(d0), orig = losses(base);
        ASSERT_TRUE(got.count(3) && got.count(4) && want.count(4)) << src.name();
        EXPECT_FALSE(got.count(2)) << "the resumed run trained step 2 again";
        for (int64_t step : {3, 4}) {
          EXPECT_EQ(got.at(step), want.at(step))
              << model << ": step " << step << " at stage 3 from " << src.name();
          EXPECT_NEAR(got.at(step), orig.at(step), 2e-5 * std::fabs(orig.at(step)))
              << model << ": step " << step << " vs the run that wrote " << src.name();
        }
      }();
    world->barrier()->wait();
  }
}

TEST(Zero3Start, GptResumesFromEveryStageIntoShards) {
  expect_resume("gpt");
}
TEST(Zero3Start, ClipWithFrozenTowerResumesFromEveryStageIntoShards) {
  expect_resume("clip");
}

// The shard-only load itself, bitwise: load_model_parameters (roles param and ema) and
// load_parameters_from into a sharded store equal the full load's slices.
TEST(Zero3Start, ShardOnlyLoadEqualsFullLoadBitwise) {
  auto world = distributed::testing::test_world(240);
  const int n = world->size();
  config::Config cfg = resume_config("gpt");
  cfg.mutable_train()->set_ema_decay(0.9f);
  cfg.mutable_train()->set_steps(2);
  const RunAt src = sources(n)[1];  // stage 1 on another DP size than n
  const std::string base = run_dir("gpt_load_src_" + src.name());
  train_at(*world, cfg, src, base, "");
  distributed::ParallelLayout layout(*world, 1);  // collective (splits the world)
  // No collective from here to the barrier: the checks run in a lambda, so an ASSERT that fails
  // on one rank ends the lambda and that rank still reaches the barrier.
  [&] {
    auto ckpt = checkpoint::open_checkpoint(base + "/checkpoints/step_00000002");
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    for (const std::string role : {"param", "ema"}) {
      auto full = build(cfg, layout), only = build(cfg, layout);
      models::ParamStore &f = full->params(), &s = only->params();
      ASSERT_TRUE(checkpoint::load_model_parameters(*ckpt, f, role).ok());
      f.shard_params(&layout.dp(), stage3_shards(f, layout));
      s.shard_params(&layout.dp(), stage3_shards(s, layout));
      const absl::Status st = checkpoint::load_model_parameters(*ckpt, s, role);
      ASSERT_TRUE(st.ok()) << st;
      EXPECT_TRUE(same_bits(f.param_shards(), s.param_shards())) << role;
      EXPECT_EQ(s.param_bytes_peak(), int64_t(s.param_shards().nbytes())) << role;
    }
    // init_from's path: every other parameter loaded, the rest keep the sharded init.
    auto full = build(cfg, layout), only = build(cfg, layout);
    models::ParamStore &f = full->params(), &s = only->params();
    std::vector<std::string> names(f.infos().size());
    for (size_t i = 0; i < names.size(); i += 2) names[i] = f.infos()[i].spec.name;
    f.init(5);
    ASSERT_TRUE(checkpoint::load_parameters_from(*ckpt, f, names).ok());
    f.shard_params(&layout.dp(), stage3_shards(f, layout));
    s.shard_params(&layout.dp(), stage3_shards(s, layout));
    s.init_shards(5);
    const absl::Status st = checkpoint::load_parameters_from(*ckpt, s, names);
    ASSERT_TRUE(st.ok()) << st;
    EXPECT_TRUE(same_bits(f.param_shards(), s.param_shards())) << "load_parameters_from";
    EXPECT_EQ(s.param_bytes_peak(), int64_t(s.param_shards().nbytes()));
  }();
  world->barrier()->wait();
}

}  // namespace
}  // namespace tessera::train
