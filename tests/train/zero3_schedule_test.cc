// ZeRO-3's gathering schedule on 2 ranks (ctest train_zero3_schedule_test): the first training
// step records the order in which the units are read, later steps prefetch by it
// (models::ParamStore::begin_gather_step, docs/DISTRIBUTED.md "Stage 3"):
//  - GPT (tied embedding: read at both ends of the forward and of the backward) and CLIP, with
//    recomputation off and on, a CLIP with its image tower frozen, one and several buckets per
//    unit: from the second step on no read blocks on a gather issued on demand (0 misses), no
//    prefetch is wasted (one gather per schedule entry at most), at most two units are resident,
//    and the gradients and losses stay bitwise those of the unsharded model;
//  - an order that changes between steps (a forward-only step, evaluation between steps) falls
//    back to the direction guess and still gives the same numbers, and the schedule follows the
//    new order;
//  - the trainer writes param_gather_hidden in [0, 1], param_gather_wait_ms and
//    param_gather_misses (0 after the first step, with evaluation between steps) to metrics.jsonl.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "distributed/communicator.h"
#include "distributed/zero_shards.h"
#include "models/factory.h"
#include "models/param_store.h"
#include "nlohmann/json.hpp"
#include "tests/distributed/mpi_test_env.h"
#include "tests/train/train_test_support.h"
#include "train/data_source.h"
#include "train/freeze.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

using models::ParamStore;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()) == 0;
}

// A model of `config` twice (a reference kept unsharded, one sharded over the world as
// ZeroAdamW would with `bucket_bytes`), initialised alike, and a data source for it.
struct Pair {
  config::Config cfg;
  std::unique_ptr<models::Model> ref, model;
  std::unique_ptr<DataSource> data;
  distributed::Communicator* world;

  Pair(const std::string& file, const std::vector<std::string>& sets, int64_t bucket_bytes,
       distributed::Communicator* w)
      : cfg(testing_support::load(file, sets)), world(w) {
    ref = models::make_model(cfg.model());
    model = models::make_model(cfg.model());
    for (auto* m : {ref.get(), model.get()}) {
      freeze_parameters(cfg, m->params());
      m->params().init(5);
    }
    ParamStore& s = model->params();
    s.shard_params(world, distributed::ZeroShards(s.trainable_numel(), bucket_bytes, world->size(),
                                                  world->rank(), s.unit_bounds()));
    s.set_auto_gather(true);
    data = make_data_source(cfg);
  }
  models::Batch batch(int step) const {  // a different one on every rank and step
    return data->batch(int64_t(step * world->size() + world->rank()) * 2, 2);
  }
  // One training step on both models: the sharded one inside begin_gather_step()/release_all().
  // Returns the sharded store's statistics of the step.
  ParamStore::GatherStats step(int n, bool forward_only = false) {
    ParamStore& s = model->params();
    s.reset_gather_stats();
    s.begin_gather_step();
    const models::Batch b = batch(n);
    ref->params().zero_grads();
    s.zero_grads();
    const double want = forward_only ? ref->forward_loss(b).loss : ref->forward_backward(b, 1).loss;
    const double got =
        forward_only ? model->forward_loss(b).loss : model->forward_backward(b, 1).loss;
    s.release_all();
    EXPECT_EQ(std::memcmp(&want, &got, sizeof(double)), 0) << want << " vs " << got;
    if (!forward_only) {
      EXPECT_TRUE(same_bits(s.grads(), ref->params().grads())) << "gradients differ";
    }
    return s.gather_stats();
  }
  int64_t largest_unit_bytes() const {
    int64_t largest = 0;
    for (const auto& u : model->params().units()) {
      largest = std::max(largest, int64_t(sizeof(float)) * world->size() * u.shard);
    }
    return largest;
  }
};

void expect_fraction(const ParamStore::GatherStats& g) {
  EXPECT_GT(g.comm_seconds, 0);
  EXPECT_GE(g.wait_seconds, 0);
  EXPECT_GE(g.hidden_fraction(), 0);
  EXPECT_LE(g.hidden_fraction(), 1);
}

// Three steps: the first records (and misses at least its first read: nothing is resident),
// the others follow the schedule without a miss.
void expect_no_misses_after_first_step(const std::string& file, std::vector<std::string> sets,
                                       int64_t bucket_bytes) {
  auto world = distributed::testing::test_world();
  Pair p(file, sets, bucket_bytes, world.get());
  ParamStore& s = p.model->params();
  const ParamStore::GatherStats first = p.step(0);
  EXPECT_GE(first.misses, 1);
  expect_fraction(first);
  const std::vector<int> schedule = s.gather_schedule();
  ASSERT_FALSE(schedule.empty());
  for (int n = 1; n <= 2; ++n) {
    SCOPED_TRACE("step " + std::to_string(n + 1));
    s.reset_gathered_peak();
    const ParamStore::GatherStats g = p.step(n);
    EXPECT_EQ(g.misses, 0);
    EXPECT_GE(g.gathers, 1);
    EXPECT_LE(g.gathers, int64_t(schedule.size()));  // no prefetch gathered in vain
    expect_fraction(g);
    EXPECT_EQ(s.gather_schedule(), schedule);
    EXPECT_LE(s.gathered_bytes_peak(), 2 * p.largest_unit_bytes());
    EXPECT_EQ(s.gathered_bytes_live(), 0);
  }
  // Every unit that holds parameters is read (a schedule of the forward alone, or one missing a
  // tower, would have fewer).
  std::vector<char> seen(s.units().size(), 0);
  for (int u : schedule) seen.at(u) = 1;
  for (size_t u = 0; u < s.units().size(); ++u) {
    if (s.units()[u].numel > 0) EXPECT_TRUE(seen[u]) << s.units()[u].name << " never read";
  }
}

const std::vector<std::string> kGpt = {"data.global_batch_size=4"};
const std::vector<std::string> kClip = {"data.global_batch_size=4",
                                        "model.clip.image.transformer.n_layers=2",
                                        "model.clip.text.transformer.n_layers=2"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// GPT's schedule turns: the forward ends reading the tied embedding (head) after ln_f, the
// backward starts there and goes back to ln_f; a guess from the last two reads misses both.
TEST(Zero3Schedule, GptHasNoMissesAfterTheFirstStep) {
  for (bool recompute : {false, true}) {
    SCOPED_TRACE(recompute ? "recompute" : "plain");
    const auto sets = with(kGpt, {recompute ? "model.recompute_activations=true"
                                            : "model.recompute_activations=false"});
    expect_no_misses_after_first_step("configs/gpt_tiny.pbtxt", sets, int64_t(1) << 40);
    // Several buckets per unit (one all-gather each, waited for together).
    expect_no_misses_after_first_step("configs/gpt_tiny.pbtxt", sets, 40000);
  }
}

TEST(Zero3Schedule, GptScheduleReadsTheTiedEmbeddingAtTheTurn) {
  auto world = distributed::testing::test_world();
  for (bool recompute : {false, true}) {
    Pair p("configs/gpt_tiny.pbtxt",
           with(kGpt, {recompute ? "model.recompute_activations=true"
                                 : "model.recompute_activations=false"}),
           int64_t(1) << 40, world.get());
    p.step(0);
    const ParamStore& s = p.model->params();
    std::vector<std::string> names;
    for (int u : s.gather_schedule()) names.push_back(s.units()[u].name);
    // The embeddings, the blocks, ln_f; the head (the tied embedding), ln_f again, the blocks
    // backwards (a recomputed block reads its unit twice in a row: one entry); the token
    // embedding's gradient is deferred and reads nothing.
    const std::vector<std::string> want = {"other", "blocks.0.", "blocks.1.", "other#2",
                                           "other", "other#2",   "blocks.1.", "blocks.0."};
    EXPECT_EQ(names, want) << (recompute ? "recompute" : "plain");
    EXPECT_EQ(s.unit_of(s.find("tok_emb.weight")), s.gather_schedule()[4]);
  }
}

TEST(Zero3Schedule, ClipHasNoMissesAfterTheFirstStep) {
  for (bool recompute : {false, true}) {
    SCOPED_TRACE(recompute ? "recompute" : "plain");
    expect_no_misses_after_first_step(
        "configs/clip_tiny.pbtxt",
        with(kClip, {recompute ? "model.recompute_activations=true"
                               : "model.recompute_activations=false"}),
        40000);
  }
}

// LiT: the image tower is frozen, so it runs forward only (its units read once per step).
TEST(Zero3Schedule, ClipWithAFrozenTowerHasNoMissesAfterTheFirstStep) {
  expect_no_misses_after_first_step("configs/clip_tiny.pbtxt",
                                    with(kClip, {"train.freeze=image.*"}), int64_t(1) << 40);
}

// A step in another order (forward only) leaves the schedule at its first off-schedule read and
// guesses; the numbers stay the same, the schedule becomes that step's order, and two steps
// later (one to re-record) the misses are gone again. Evaluation between steps (outside
// begin_gather_step()/release_all()) guesses and does not disturb the schedule.
TEST(Zero3Schedule, AChangedOrderFallsBackAndIsRecordedAgain) {
  auto world = distributed::testing::test_world();
  Pair p("configs/gpt_tiny.pbtxt", kGpt, 40000, world.get());
  ParamStore& s = p.model->params();
  p.step(0);
  const std::vector<int> schedule = s.gather_schedule();
  EXPECT_EQ(p.step(1).misses, 0);
  p.step(2, /*forward_only=*/true);
  const std::vector<int> forward = s.gather_schedule();
  EXPECT_LT(forward.size(), schedule.size());
  EXPECT_TRUE(std::equal(forward.begin(), forward.end(), schedule.begin()))
      << "the forward's order is the full step's first part";
  EXPECT_GE(p.step(3).misses, 1);  // left the schedule at the turn
  EXPECT_EQ(s.gather_schedule(), schedule);
  EXPECT_EQ(p.step(4).misses, 0);
  // Evaluation between steps, on this rank's batches (both models, so they stay in step).
  for (int k = 0; k < 2; ++k) {
    const models::Batch b = p.batch(10 + k);
    const double want = p.ref->forward_loss(b).loss, got = p.model->forward_loss(b).loss;
    EXPECT_EQ(std::memcmp(&want, &got, sizeof(double)), 0);
  }
  EXPECT_EQ(p.step(5).misses, 0);
  EXPECT_EQ(s.gather_schedule(), schedule);
}

std::vector<nlohmann::json> read_metrics(const std::string& dir) {
  std::vector<nlohmann::json> rows;
  std::ifstream f(dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

// The trainer: metrics.jsonl's gather fields on every step, 0 misses from the second step on,
// with evaluation between steps.
TEST(Zero3Schedule, TrainerReportsHiddenShareAndMisses) {
  auto world = distributed::testing::test_world();
  const std::string dir = testing_support::run_dir("zero3_schedule_metrics");
  if (world->rank() == 0) std::filesystem::remove_all(dir);  // metrics.jsonl of an earlier run
  world->barrier()->wait();
  const config::Config cfg =
      testing_support::load("configs/gpt_tiny.pbtxt",
                            {"data.global_batch_size=8", "parallel.bucket_bytes=40000",
                             "parallel.zero_stage=3", "train.steps=5", "log.every_steps=1",
                             "checkpoint.every_steps=0", "eval.every_steps=2", "eval.batches=1"});
  ASSERT_EQ(Trainer(cfg, dir, /*quiet=*/true, world.get()).run(), 0);
  world->barrier()->wait();
  if (world->rank() != 0) return;
  int steps = 0;
  for (const nlohmann::json& row : read_metrics(dir)) {
    if (!row.contains("step_ms")) continue;  // evaluation rows
    ++steps;
    const int64_t step = row["step"];
    SCOPED_TRACE("step " + std::to_string(step));
    ASSERT_TRUE(row.contains("param_gather_hidden"));
    ASSERT_TRUE(row.contains("param_gather_misses"));
    ASSERT_TRUE(row.contains("param_gather_wait_ms"));
    EXPECT_GE(double(row["param_gather_hidden"]), 0);
    EXPECT_LE(double(row["param_gather_hidden"]), 1);
    EXPECT_GE(double(row["param_gather_wait_ms"]), 0);
    if (step == 1) {
      EXPECT_GE(double(row["param_gather_misses"]), 1);
    } else {
      EXPECT_EQ(double(row["param_gather_misses"]), 0);
    }
  }
  EXPECT_EQ(steps, 5);
}

}  // namespace
}  // namespace tessera::train
