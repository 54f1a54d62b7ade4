// ZeRO-3's gathering schedule on 2 ranks (ctest train_zero3_schedule_test): the first training
// step records the order in which the units are read, later steps prefetch by it
// (models::ParamStore::begin_gather_step, docs/DISTRIBUTED.md "Stage 3"):
//  - GPT (tied embedding: read at both ends of the forward and of the backward) and CLIP, with
//    recomputation off and on, a CLIP with its image tower frozen, one and several buckets per
//    unit: from the second step on no read blocks on a gather issued on demand (0 misses), each
//    step issues exactly the gathers the documented replay implies for the recorded schedule
//    (expected_gathers(): the unit read and the next one resident, nothing else; for GPT 2 L + 3
//    with L blocks, one saved at the turn), at most two units are resident, the wait fits in the
//    step's time and param_gather_hidden is 1 - wait / comm, and the gradients and losses stay
//    bitwise those of the unsharded model;
//  - an order that changes between steps (a forward-only step, evaluation between steps) falls
//    back to the direction guess and still gives the same numbers, the schedule becomes exactly
//    the forward's part of the step and is recorded again by the next full step;
//  - units left resident by an evaluation between steps (gathered outside any step) do not count
//    in the next step's gathers, communication time or param_gather_hidden (a communicator whose
//    every all-gather reports exactly 1 s makes the step's communication time an exact count);
//  - the trainer writes param_gather_hidden, param_gather_wait_ms (within the step's time) and
//    param_gather_misses (0 after the first step, with evaluation between steps) to
//    metrics.jsonl.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "distributed/communicator.h"
#include "distributed/zero_shards.h"
#include "models/factory.h"
#include "models/param_store.h"
#include "nlohmann/json.hpp"
#include "tests/distributed/mpi_test_env.h"
#include "tests/train/rank_agreement.h"
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
    const auto t0 = std::chrono::steady_clock::now();
    s.begin_gather_step();
    const models::Batch b = batch(n);
    ref->params().zero_grads();
    s.zero_grads();
    const double want = forward_only ? ref->forward_loss(b).loss : ref->forward_backward(b, 1).loss;
    const double got =
        forward_only ? model->forward_loss(b).loss : model->forward_backward(b, 1).loss;
    s.release_all();
    last_step_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(std::memcmp(&want, &got, sizeof(double)), 0) << want << " vs " << got;
    if (!forward_only) {
      EXPECT_TRUE(same_bits(s.grads(), ref->params().grads())) << "gradients differ";
    }
    return s.gather_stats();
  }
  double last_step_seconds = 0;  // step()'s wall time, begin_gather_step() to release_all()
  int64_t largest_unit_bytes() const {
    int64_t largest = 0;
    for (const auto& u : model->params().units()) {
      largest = std::max(largest, int64_t(sizeof(float)) * world->size() * u.shard);
    }
    return largest;
  }
};

// The gathers a step issues when it follows `schedule` for its first `reads` reads, as
// ParamStore's header documents the replay, computed here apart from the code under test:
// begin_gather_step() makes schedule[0] and schedule[1] resident, reading schedule[k] keeps
// exactly schedule[k] and schedule[k + 1] resident (releasing any other unit), and every unit
// made resident that was not resident is one gather. `resident`: the units gathered when the
// step begins (left by an evaluation between steps; none after a step, which releases all).
int64_t expected_gathers(const std::vector<int>& schedule, std::set<int> resident = {},
                         size_t reads = size_t(-1)) {
  reads = std::min(reads, schedule.size());
  int64_t gathers = 0;
  auto keep = [&](std::set<int> want) {
    for (int u : want) gathers += !resident.count(u);
    resident = std::move(want);
  };
  auto at = [&](size_t k) {
    return k < schedule.size() ? std::set<int>{schedule[k]} : std::set<int>{};
  };
  auto both = [&](size_t k) {
    std::set<int> a = at(k), b = at(k + 1);
    a.insert(b.begin(), b.end());
    return a;
  };
  if (!schedule.empty()) keep(both(0));
  for (size_t k = 0; k < reads; ++k) keep(both(k));
  return gathers;
}

// A step's statistics, checked against what they measure: the wait is time the step's thread
// blocked on gathers, and the communication time the union of the step's gather intervals
// (distributed::BusyTime, as GradSync's), so both are at most the step's wall time: every counted
// gather is issued and released inside the step. Summing the intervals instead, as ParamStore once
// did, broke that bound by up to 15 times on CLIP's steady steps, where a unit's buckets and the
// next unit's prefetch are in flight together, and overstated param_gather_hidden.
// param_gather_hidden is 1 - wait / comm as documented (GradSync's definition).
void expect_consistent_times(const ParamStore::GatherStats& g, double step_seconds) {
  EXPECT_GT(g.comm_seconds, 0);
  EXPECT_LE(g.comm_seconds, step_seconds);
  EXPECT_LE(g.wait_seconds, step_seconds);
  EXPECT_DOUBLE_EQ(g.hidden_fraction(), std::clamp(1 - g.wait_seconds / g.comm_seconds, 0.0, 1.0));
}

// Three steps: the first records (and misses at least its first read: nothing is resident),
// the others follow the schedule without a miss.
// want_gathers: the gathers per step known from the model's structure (-1: not given).
void expect_no_misses_after_first_step(const std::string& file, std::vector<std::string> sets,
                                       int64_t bucket_bytes, int64_t want_gathers = -1) {
  auto world = distributed::testing::test_world();
  Pair p(file, sets, bucket_bytes, world.get());
  ParamStore& s = p.model->params();
  const ParamStore::GatherStats first = p.step(0);
  EXPECT_GE(first.misses, 1);
  expect_consistent_times(first, p.last_step_seconds);
  const std::vector<int> schedule = s.gather_schedule();
  ASSERT_FALSE(schedule.empty());  // the same on every rank (the model code's order)
  if (want_gathers >= 0) EXPECT_EQ(expected_gathers(schedule), want_gathers);
  for (int n = 1; n <= 2; ++n) {
    SCOPED_TRACE("step " + std::to_string(n + 1));
    s.reset_gathered_peak();
    const ParamStore::GatherStats g = p.step(n);
    EXPECT_EQ(g.misses, 0);
    // Exactly the replay's gathers: none on demand, no prefetch in vain, none twice.
    EXPECT_EQ(g.gathers, expected_gathers(schedule));
    EXPECT_EQ(g.steps, 1);
    expect_consistent_times(g, p.last_step_seconds);
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
// With L blocks the schedule has 2 L + 4 entries (GptScheduleReadsTheTiedEmbeddingAtTheTurn)
// and a step gathers each once but ln_f's unit ("other#2"), resident across the turn: 2 L + 3.
int64_t gpt_gathers_per_step(const std::vector<std::string>& sets) {
  const config::Config cfg = testing_support::load("configs/gpt_tiny.pbtxt", sets);
  return 2 * int64_t(cfg.model().gpt().transformer().n_layers()) + 3;
}

TEST(Zero3Schedule, GptHasNoMissesAfterTheFirstStep) {
  for (bool recompute : {false, true}) {
    SCOPED_TRACE(recompute ? "recompute" : "plain");
    const auto sets = with(kGpt, {recompute ? "model.recompute_activations=true"
                                            : "model.recompute_activations=false"});
    expect_no_misses_after_first_step("configs/gpt_tiny.pbtxt", sets, int64_t(1) << 40,
                                      gpt_gathers_per_step(sets));
    // Several buckets per unit (one all-gather each, waited for together): still one gather.
    expect_no_misses_after_first_step("configs/gpt_tiny.pbtxt", sets, 40000,
                                      gpt_gathers_per_step(sets));
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
  // A forward alone reads the embeddings, the L blocks, ln_f and the head: the schedule's first
  // L + 3 entries, on schedule (no miss, the replay's gathers for those reads), and its order
  // replaces the schedule.
  const int64_t forward_reads =
      testing_support::load("configs/gpt_tiny.pbtxt", kGpt).model().gpt().transformer().n_layers() +
      3;
  const ParamStore::GatherStats f = p.step(2, /*forward_only=*/true);
  EXPECT_EQ(f.misses, 0);
  EXPECT_EQ(f.gathers, expected_gathers(schedule, {}, size_t(forward_reads)));
  const std::vector<int> forward = s.gather_schedule();
  EXPECT_EQ(forward, std::vector<int>(schedule.begin(), schedule.begin() + forward_reads))
      << "the forward's order is the full step's first part";
  // The full step leaves the forward's schedule at the turn (ln_f's unit was released after the
  // head, the schedule's end) and guesses: misses; its order is recorded again.
  EXPECT_GE(p.step(3).misses, 1);
  EXPECT_EQ(s.gather_schedule(), schedule);
  const ParamStore::GatherStats again = p.step(4);
  EXPECT_EQ(again.misses, 0);
  EXPECT_EQ(again.gathers, expected_gathers(schedule));
  // Evaluation between steps, on this rank's batches (both models, so they stay in step).
  for (int k = 0; k < 2; ++k) {
    const models::Batch b = p.batch(10 + k);
    const double want = p.ref->forward_loss(b).loss, got = p.model->forward_loss(b).loss;
    EXPECT_EQ(std::memcmp(&want, &got, sizeof(double)), 0);
  }
  EXPECT_EQ(p.step(5).misses, 0);
  EXPECT_EQ(s.gather_schedule(), schedule);
}

// The world's collectives, but every all-gather completes before it returns and reports exactly
// 1 s of communication (started at 1 ns, completed 1e9 ns later). So a step's comm_seconds is
// exactly the number of all-gathers whose time it counts, and count() says how many were issued.
class OneSecondGathers : public distributed::Communicator {
 public:
  explicit OneSecondGathers(distributed::Communicator& inner) : inner_(inner) {}
  int64_t count() const { return count_; }

  distributed::WorkHandle all_gather(const Tensor& input, const Tensor& output) override {
    inner_.all_gather(input, output)->wait();
    // Disjoint intervals (the k-th: [2k, 2k + 1] s), so their union counts 1 s per all-gather.
    const int64_t start = 1 + 2000000000 * count_++;
    auto work = std::make_shared<distributed::Work>("all_gather taking 1 s");
    work->mark_started(start);
    work->complete(start + 1000000000);
    return work;
  }
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  const std::string& name() const override { return inner_.name(); }
  int64_t last_sequence() const override { return inner_.last_sequence(); }
  int world_rank_of(int r) const override { return inner_.world_rank_of(r); }
  distributed::WorkHandle all_reduce(const Tensor& t, distributed::ReduceOp op) override {
    return inner_.all_reduce(t, op);
  }
  distributed::WorkHandle reduce_scatter(const Tensor& input, const Tensor& output,
                                         distributed::ReduceOp op) override {
    return inner_.reduce_scatter(input, output, op);
  }
  distributed::WorkHandle broadcast(const Tensor& t, int root) override {
    return inner_.broadcast(t, root);
  }
  distributed::WorkHandle send(const Tensor& t, int peer) override { return inner_.send(t, peer); }
  distributed::WorkHandle recv(const Tensor& t, int peer) override { return inner_.recv(t, peer); }
  distributed::WorkHandle barrier() override { return inner_.barrier(); }
  std::unique_ptr<distributed::Communicator> split(int color, int key, std::string name) override {
    return inner_.split(color, key, std::move(name));
  }

 private:
  distributed::Communicator& inner_;
  int64_t count_ = 0;
};

std::set<int> resident_units(const ParamStore& s) {
  std::set<int> out;
  for (int u = 0; u < int(s.units().size()); ++u) {
    if (s.gathered(u)) out.insert(u);
  }
  return out;
}

// An evaluation between steps (outside begin_gather_step()/release_all()) gathers units and
// leaves some resident; the next step reuses or releases them. Only gathers issued inside the
// step count in its statistics (ParamStore's gathered_in_step_): the step's gathers are the
// replay's from what the evaluation left resident, and its communication time is exactly the
// all-gathers it issued itself (1 s each here), not those of the evaluation's units it releases.
TEST(Zero3Schedule, UnitsLeftResidentByAnEvaluationDoNotCountInTheNextStep) {
  auto world = distributed::testing::test_world();
  OneSecondGathers comm(*world);
  // One bucket per unit: one all-gather per unit gathered.
  Pair p("configs/gpt_tiny.pbtxt", kGpt, int64_t(1) << 40, &comm);
  ParamStore& s = p.model->params();
  p.step(0);
  const std::vector<int> schedule = s.gather_schedule();
  int64_t before = comm.count();
  const ParamStore::GatherStats plain = p.step(1);
  const int64_t plain_issued = comm.count() - before;
  EXPECT_EQ(plain.gathers, expected_gathers(schedule));
  EXPECT_EQ(plain.gathers, plain_issued);
  EXPECT_NEAR(plain.comm_seconds, double(plain_issued), 1e-6);
  // Evaluation on this rank's batch, on both models (they stay in step).
  before = comm.count();
  const models::Batch b = p.batch(10);
  const double want = p.ref->forward_loss(b).loss, got = p.model->forward_loss(b).loss;
  EXPECT_EQ(std::memcmp(&want, &got, sizeof(double)), 0);
  EXPECT_GT(comm.count(), before) << "the evaluation gathered";
  const std::set<int> left = resident_units(s);
  EXPECT_FALSE(left.empty()) << "the evaluation left no unit resident: nothing to test";
  before = comm.count();
  const ParamStore::GatherStats g = p.step(2);
  const int64_t issued = comm.count() - before;
  EXPECT_EQ(g.misses, 0);
  EXPECT_EQ(g.gathers, expected_gathers(schedule, left));
  EXPECT_EQ(g.gathers, issued);
  EXPECT_NEAR(g.comm_seconds, double(issued), 1e-6)
      << "the time of " << left.size() << " unit(s) gathered by the evaluation counted in the step";
  EXPECT_DOUBLE_EQ(g.hidden_fraction(), std::clamp(1 - g.wait_seconds / g.comm_seconds, 0.0, 1.0));
  EXPECT_EQ(s.gather_schedule(), schedule);
}

std::vector<nlohmann::json> read_metrics(const std::string& dir) {
  std::vector<nlohmann::json> rows;
  std::ifstream f(dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

// The trainer: metrics.jsonl's gather fields on every step, the wait within the step's time,
// 0 misses from the second step on, with evaluation between steps.
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
  const int rc = Trainer(cfg, dir, /*quiet=*/true, world.get()).run();
  EXPECT_EQ(rc, 0);
  // Together: a rank returning alone would leave the other in the barrier.
  if (!testing_support::all_ranks_ok(*world, rc == 0)) return;
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
    // Per step (log.every_steps 1): the time blocked on gathers is part of the step's time.
    EXPECT_LE(double(row["param_gather_wait_ms"]), double(row["step_ms"]));
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
