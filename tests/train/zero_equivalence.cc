// The ZeRO trainer suites' shared comparison against plain data parallel (zero_equivalence.h).
#include "tests/train/zero_equivalence.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "tests/distributed/mpi_test_env.h"
#include "tests/train/rank_agreement.h"
#include "tests/train/train_test_support.h"
#include "train/config.h"
#include "train/trainer.h"

namespace tessera::train::testing_support {

std::vector<nlohmann::json> read_metrics(const std::string& dir) {
  std::vector<nlohmann::json> rows;
  std::ifstream f(dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

Diff compare(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.numel(), b.numel());
  Diff d;
  double max_diff = 0, scale = 0;
  for (int64_t i = 0; i < std::min(a.numel(), b.numel()); ++i) {
    const float x = a.data<float>()[i], y = b.data<float>()[i];
    max_diff = std::max(max_diff, double(std::fabs(x - y)));
    scale = std::max(scale, double(std::fabs(y)));
    d.unequal += std::memcmp(&x, &y, sizeof(float)) != 0;
  }
  d.max_rel = scale > 0 ? max_diff / scale : max_diff;
  return d;
}

void expect_ranks_agree(distributed::Communicator& world, const Tensor& mine) {
  Tensor all = Tensor::empty({world.size() * mine.numel()}, DType::f32);
  world.all_gather(mine, all)->wait();
  for (int r = 1; r < world.size(); ++r) {
    EXPECT_EQ(0,
              std::memcmp(all.data<float>(), all.data<float>() + r * mine.numel(), mine.nbytes()))
        << "rank " << r << " differs from rank 0";
  }
}

std::string dp_run_dir(const std::string& name, int stage, int ranks) {
  return run_dir(name + "_dp_vs_zero" + std::to_string(stage) + "_np" + std::to_string(ranks));
}

std::string zero_run_dir(const std::string& name, int stage, int ranks) {
  return run_dir(name + "_zero" + std::to_string(stage) + "_np" + std::to_string(ranks));
}

void expect_zero_equals_dp(std::vector<std::string> sets, const std::string& name, int stage,
                           const std::string& config, bool bitwise_np2) {
  auto world = distributed::testing::test_world();
  // Clipping active on every step (grad norms of gpt_tiny are ~1-3), weight decay masked by
  // group (gpt_tiny: weight_decay 0.1, norms/biases/embeddings exempt), a learning rate that
  // moves the parameters visibly in 5 steps.
  for (const char* s : {"train.steps=5", "optim.grad_clip=0.25", "optim.lr=3e-3",
                        "schedule.warmup_steps=0", "log.every_steps=1"}) {
    sets.push_back(s);
  }
  auto with = [&](int zero_stage) {
    auto v = sets;
    v.push_back("parallel.zero_stage=" + std::to_string(zero_stage));
    return load(config, v);
  };
  // Fresh run directories per rank count and stage (metrics.jsonl appends; ctest may run np2 and
  // np4, and the stage-2 and stage-3 suites, at once).
  const std::string dir_dp = dp_run_dir(name, stage, world->size());
  const std::string dir_zero = zero_run_dir(name, stage, world->size());
  if (world->rank() == 0) {
    std::filesystem::remove_all(dir_dp);
    std::filesystem::remove_all(dir_zero);
  }
  world->barrier()->wait();
  const double clip = with(0).optim().grad_clip();  // the sets may override 0.25
  // EXPECT, then leave together (tests/train/rank_agreement.h): the gathers below are collective.
  Trainer dp(with(0), dir_dp, true, world.get());
  const int rc_dp = dp.run();
  EXPECT_EQ(rc_dp, kExitOk);
  Trainer zero(with(stage), dir_zero, true, world.get());
  const int rc_zero = zero.run();
  EXPECT_EQ(rc_zero, kExitOk);
  if (!all_ranks_ok(*world, rc_dp == kExitOk && rc_zero == kExitOk)) return;
  // ZeRO-3 really sharded the parameters (all ranks take part in the gather below).
  models::ParamStore& zp = zero.model().params();
  EXPECT_EQ(zp.params_sharded(), stage == 3 && world->size() > 1);
  const Tensor zero_params = zp.params_sharded() ? zp.gather_full() : zp.params();
  // The replicas of one TP shard agree (TP ranks hold different shards by design).
  expect_ranks_agree(zero.layout().dp(), zero_params);
  // Every rank compares its own TP slices (under TP the ranks of DP rank 0 hold different ones).
  const Diff d = compare(zero_params, dp.model().params().params());
  if (zero.layout().dp_rank() == 0) {
    std::printf(
        "[%s on %d ranks, TP rank %d] ZeRO-%d vs plain DP after 5 steps: max rel diff %.3g, %lld "
        "of %lld parameters not bitwise equal\n",
        name.c_str(), world->size(), zero.layout().tp_rank(), stage, d.max_rel,
        (long long)d.unequal, (long long)dp.model().params().numel());
  }
  EXPECT_LT(d.max_rel, 1e-6) << "rank " << world->rank();
  // On a DP group of 2 ranks (2 ranks, or TP 2 x DP 2) bitwise: the reduce-scatter and the
  // all-reduce both add exactly two floats (a + b == b + a), the AdamW kernel is element-wise,
  // and the only other difference, the order of the double sum of squares, is far below the
  // f32 rounding of the clip scale. With DP 4 MPI may associate the four-way sums differently
  // in the two collectives: not asserted (measured bitwise with one micro-batch all the same).
  if (zero.layout().dp_size() == 2 && bitwise_np2) {
    EXPECT_EQ(d.unequal, 0) << "rank " << world->rank();
  }
  if (world->rank() == 0) {
    // Clipping was active on every step, and both runs saw the same norms and losses.
    auto rows_dp = read_metrics(dir_dp), rows_zero = read_metrics(dir_zero);
    EXPECT_EQ(rows_dp.size(), 5u);
    EXPECT_EQ(rows_zero.size(), rows_dp.size());
    const int64_t micro_batches = with(stage).train().micro_batches();
    const int64_t param_bytes = 4 * dp.model().params().numel();
    // Stage 3's gathered bytes per unit: its f32 buffer (padded to dp shards) and, with bf16
    // compute, the bf16 copy made from it (ParamStore::compute_param), freed with it.
    const int64_t per_elem = with(stage).train().precision() == config::TrainConfig::BF16 ? 6 : 4;
    const int64_t all_gathered = param_bytes / 4 * per_elem;
    std::vector<int64_t> unit_bytes;
    for (const models::GatherUnit& u : zp.units()) {
      unit_bytes.push_back(u.shard * zero.layout().dp_size() * per_elem);
    }
    std::sort(unit_bytes.rbegin(), unit_bytes.rend());
    const int64_t two_units =
        std::accumulate(unit_bytes.begin(),
                        unit_bytes.begin() + std::min<size_t>(2, unit_bytes.size()), int64_t(0));
    for (size_t i = 0; i < std::min(rows_dp.size(), rows_zero.size()); ++i) {
      if (stage == 3) {
        // ZeRO-3 held 1/dp of the parameters (up to padding) and never all of them at once ...
        const int64_t shard = rows_zero[i]["param_shard_bytes"];
        const int64_t dp_ranks = zero.layout().dp_size();  // (this TP rank's slices)
        EXPECT_GE(shard * dp_ranks, param_bytes);
        EXPECT_LT(shard * dp_ranks, param_bytes + 4 * 64 * dp_ranks);
        const int64_t peak = rows_zero[i]["param_gathered_peak_bytes"];
        EXPECT_GT(peak, 0);
        EXPECT_LT(peak, all_gathered) << "step " << i + 1;
        // What the design promises: at most two units resident at once, the one being read and
        // the one prefetched (ParamStore::auto_gather_access).
        EXPECT_LE(peak, two_units) << "step " << i + 1;
        // ... and gathered more than the parameters' bytes once per micro-batch: every unit in
        // the forward, most again in the backward (not those still resident at the turn, nor
        // at the next micro-batch's start; GPT's tied embedding more often).
        EXPECT_GT(int64_t(rows_zero[i]["param_gather_bytes"]), micro_batches * param_bytes)
            << "step " << i + 1;
        EXPECT_FALSE(rows_dp[i].contains("param_gather_bytes"));
        if (i == 0) {
          std::printf(
              "[%s on %d ranks] ZeRO-3 per rank: parameter shard %lld bytes, gathered peak %lld "
              "bytes (the two largest units: %lld), all-gathered %lld bytes per step; full "
              "parameters %lld bytes\n",
              name.c_str(), world->size(), (long long)shard, (long long)peak, (long long)two_units,
              (long long)rows_zero[i]["param_gather_bytes"], (long long)param_bytes);
        }
      }
      if (stage >= 2) {
        // The ZeRO-2 schedule really ran: a reduce-scatter of every gradient per micro-batch
        // (CLIP with several micro-batches: through GradCache, train/grad_cache.cc) ...
        EXPECT_EQ(int64_t(rows_zero[i]["allreduce_bytes"]),
                  micro_batches * int64_t(rows_dp[i]["allreduce_bytes"]))
            << "step " << i + 1;
        // ... from staged gradients: less resident than the full buffer plain DP holds.
        EXPECT_LT(int64_t(rows_zero[i]["grad_peak_bytes"]), int64_t(rows_dp[i]["grad_peak_bytes"]))
            << "step " << i + 1;
        if (i == 0) {
          std::printf(
              "[%s on %d ranks] gradient memory, peak per step: ZeRO-%d %lld bytes, plain "
              "DP %lld bytes\n",
              name.c_str(), world->size(), stage, (long long)rows_zero[i]["grad_peak_bytes"],
              (long long)rows_dp[i]["grad_peak_bytes"]);
        }
      }
      const double a = rows_zero[i]["grad_norm"], b = rows_dp[i]["grad_norm"];
      EXPECT_GT(b, clip) << "step " << i + 1 << ": clipping not active";
      // Where the summation order differs, CLIP's norms drift apart by 2e-6 at step 3 (step 1:
      // 2e-9): its gradient there (norm 2, from 11.6 at step 1) is a difference of larger parts,
      // which amplifies the parameters' 1e-8 differences. 1e-5 there, 1e-6 otherwise.
      EXPECT_NEAR(a, b, (bitwise_np2 ? 1e-6 : 1e-5) * b) << "step " << i + 1;
      EXPECT_NEAR(double(rows_zero[i]["loss"]), double(rows_dp[i]["loss"]),
                  1e-5 * std::fabs(double(rows_dp[i]["loss"])));
    }
  }
  world->barrier()->wait();
}

const std::vector<std::string> kAccumulate = {"train.micro_batches=2", "optim.eps=1e-4"};

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void expect_model_equals_dp(const std::string& model, std::vector<std::string> sets, int stage,
                            const std::string& name) {
  sets.push_back("data.global_batch_size=8");
  sets.push_back("parallel.bucket_bytes=40000");
  const std::string config = "configs/" + model + "_tiny.pbtxt";
  const std::string run = name.empty() ? model : name;
  expect_zero_equals_dp(sets, run, stage, config);
  expect_zero_equals_dp(concat(sets, kAccumulate), run + "_accumulate", stage, config,
                        /*bitwise_np2=*/false);
}

// parallel.reduce_tied_grad_early: GPT's tied-embedding gradient reduce-scattered in two parts
// (the head's at once, the embedding's at the end), at stage 2 or 3: still equal to plain DP
// (not bitwise: two averages added), with a lower gradient peak than the same stage without it
// (the head's part no longer resident through the whole backward) and the extra reduce-scatter
// counted in dp_comm_bytes. Plain DP (stage 0) ignores the option.
void expect_tied_grad_reduced_early(int stage) {
  auto world = distributed::testing::test_world();
  // optim.eps 1e-4 as for kAccumulate: the sums differ in their last bits, which Adam's first
  // steps amplify where a gradient is near zero (1.45e-6 measured with eps 1e-8).
  const std::vector<std::string> sets = {"data.global_batch_size=8", "parallel.bucket_bytes=40000",
                                         "optim.eps=1e-4"};
  expect_zero_equals_dp(sets, "gpt_tied_late", stage);
  expect_zero_equals_dp(concat(sets, {"parallel.reduce_tied_grad_early=true"}), "gpt_tied_early",
                        stage, "configs/gpt_tiny.pbtxt", /*bitwise_np2=*/false);
  // Two micro-batches: the second's partial reduce-scatter adds into the first's shard.
  expect_zero_equals_dp(concat(sets, {"parallel.reduce_tied_grad_early=true",
                                      "data.global_batch_size=16", "train.micro_batches=2"}),
                        "gpt_tied_early_accumulate", stage, "configs/gpt_tiny.pbtxt",
                        /*bitwise_np2=*/false);
  // Rank 0's checks in a function of their own: an ASSERT there ends it, not this function, and
  // rank 0 still reaches the barrier below (tests/train/rank_agreement.h).
  if (world->rank() == 0)
    [&] {
      const auto late = read_metrics(zero_run_dir("gpt_tied_late", stage, world->size()));
      const auto early = read_metrics(zero_run_dir("gpt_tied_early", stage, world->size()));
      ASSERT_EQ(late.size(), early.size());
      const config::Config cfg = load("configs/gpt_tiny.pbtxt");
      const int64_t table =
          4 * int64_t(cfg.model().gpt().vocab_size()) * cfg.model().gpt().transformer().d_model();
      for (size_t i = 0; i < late.size(); ++i) {
        const int64_t a = early[i]["grad_peak_bytes"], b = late[i]["grad_peak_bytes"];
        EXPECT_LT(a, b) << "step " << i + 1;
        EXPECT_GT(double(early[i]["dp_comm_bytes"]), double(late[i]["dp_comm_bytes"]));
        if (i == 0) {
          std::printf(
              "[stage %d on %d ranks] gradient peak: %lld bytes reduced late, %lld early "
              "(the tied table: %lld bytes)\n",
              stage, world->size(), (long long)b, (long long)a, (long long)table);
        }
      }
    }();
  world->barrier()->wait();
}

// Gradient staging with a tied head (stage 2 or 3): the table's gradient is never dense. The
// token embedding keeps dy and its ids, and the head (when dlogits and the hidden state are smaller
// than the table, as here: 32 tokens per rank, vocabulary 4096, width 64) keeps those; the
// reduction computes the gradient bucket by bucket (ParamStore::add_grad_source). Equal to plain DP
// (bitwise on 2 ranks: each element gets the same additions in the same order), and the gradient
// peak of every step stays below the table's bytes (the dense path holds the whole table). With
// bf16 compute the head keeps bf16 dlogits and hidden state, and the per-bucket products are the
// same bf16 x bf16 -> f32 matmul on a column slice as the dense path's.
std::vector<std::string> tied_table_sets(int ranks) {
  return {"data.global_batch_size=" + std::to_string(ranks), "model.gpt.context=32",
          "model.gpt.vocab_size=4096", "parallel.bucket_bytes=40000"};
}

void expect_tied_table_built_bucket_by_bucket(int stage, bool bf16) {
  auto world = distributed::testing::test_world();
  std::vector<std::string> sets = tied_table_sets(world->size());
  if (bf16) sets.push_back("train.precision=BF16");
  const std::string name = bf16 ? "gpt_tied_rows_bf16" : "gpt_tied_rows";
  const config::Config cfg = load("configs/gpt_tiny.pbtxt", sets);
  const int64_t table =
      4 * int64_t(cfg.model().gpt().vocab_size()) * cfg.model().gpt().transformer().d_model();
  expect_zero_equals_dp(sets, name, stage);
  if (world->rank() == 0)
    [&] {  // ASSERT ends the lambda only: rank 0 reaches the barrier
      const auto rows = read_metrics(zero_run_dir(name, stage, world->size()));
      const auto dense = read_metrics(dp_run_dir(name, stage, world->size()));
      ASSERT_EQ(rows.size(), 5u);
      for (size_t i = 0; i < rows.size(); ++i) {
        const int64_t peak = rows[i]["grad_peak_bytes"];
        EXPECT_LT(peak, table) << "step " << i + 1;
        if (i == 0) {
          std::printf(
              "[%s, stage %d on %d ranks] gradient peak %lld bytes; the tied table %lld bytes; "
              "plain DP's flat gradient %lld bytes\n",
              name.c_str(), stage, world->size(), (long long)peak, (long long)table,
              (long long)int64_t(dense[i]["grad_peak_bytes"]));
        }
      }
    }();
  world->barrier()->wait();
}

}  // namespace tessera::train::testing_support
