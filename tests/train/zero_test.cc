// ZeRO stages 1 and 2 (parallel.zero_stage) on 2 and 4 ranks (ctest train_zero_test and _np4);
// stage 3 is zero3_test.cc, and both compare through zero_equivalence.h:
//  - ZeroAdamW on a small store with an odd element count (a padded last bucket, ranks owning
//    nothing of it) equals AdamW on the averaged gradients;
//  - the trainer with ZeRO-1 equals plain data parallel on the same ranks after 5 GPT steps with
//    clipping active and masked weight decay, also with gradient accumulation;
//  - also under tensor parallel 2 x data parallel 2 (4 ranks), where the clipping norm spans
//    both groups;
//  - the optimizer state per rank is about 1/dp of plain AdamW's;
//  - ZeRO-2 (reduce-scatter on every micro-batch, accumulating into the shard): GradSync and the
//    optimizer bitwise against AdamW on exact gradients; the trainer equals plain DP for GPT (one
//    and two micro-batches, bf16 compute, recomputation, and TP 2 x DP 2), ViT, CLIP (two
//    micro-batches: GradCache) and DiT (one and two), with less gradient memory resident than
//    plain DP's full buffer (metrics.jsonl grad_peak_bytes); GPT's tied gradient reduced early
//    and built bucket by bucket.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "distributed/grad_sync.h"
#include "models/factory.h"
#include "tests/distributed/mpi_test_env.h"
#include "train/optimizer.h"
#include "train/zero_optimizer.h"

#include "tests/train/train_test_support.h"
#include "tests/train/zero_equivalence.h"
#include "tests/train/zero_test_support.h"

namespace tessera::train {
namespace {

using testing_support::compare;
using testing_support::concat;
using testing_support::Diff;
using testing_support::expect_model_equals_dp;
using testing_support::expect_ranks_agree;
using testing_support::expect_zero_equals_dp;
using testing_support::kAccumulate;
using testing_support::load;

// A store whose element count (289) divides by neither 2 nor 4, with all three decay groups.
// Rank r's gradient: multiples of 1/64 (sums and averages over 2 or 4 ranks are exact).
void fill_grads(const Tensor& g, int rank, int step) {
  for (int64_t i = 0; i < g.numel(); ++i) {
    g.data<float>()[i] = float(((i * 7 + rank * 13 + step * 5) % 41) - 20) / 64.0f;
  }
}

TEST(Zero, OptimizerEqualsAdamWOnAveragedGradientsWithPaddedBuckets) {
  auto world = distributed::testing::test_world();
  const int S = world->size(), R = world->rank();
  for (const float clip : {0.0f, 0.5f}) {
    for (const int64_t bucket_bytes : {int64_t(4), int64_t(4 * 23), int64_t(4 * 1000)}) {
      SCOPED_TRACE("clip " + std::to_string(clip) + " bucket_bytes " +
                   std::to_string(bucket_bytes));
      const config::OptimConfig oc = testing_support::zero_test_optim(clip);
      auto zs = testing_support::odd_store(), ref = testing_support::odd_store();
      ZeroAdamW zero(*zs, oc, *world, bucket_bytes);
      AdamW adamw(*ref, oc);
      distributed::GradSync sync(*world, zs->grads(), zero.shards(), zero.shard_grads());
      // The shards tile the buffer: every element is owned by exactly one rank.
      int64_t owned = zero.shards().own_numel;
      Tensor t = Tensor::empty({1}, DType::f32);
      t.data<float>()[0] = float(owned);
      world->all_reduce(t, distributed::ReduceOp::kSum)->wait();
      EXPECT_EQ(int64_t(t.data<float>()[0]), zs->numel());
      for (int step = 1; step <= 3; ++step) {
        fill_grads(zs->grads(), R, step);
        sync.on_ready(zs->numel() / 3);
        sync.finish();
        // Reference: the average of every rank's gradients, computed here.
        for (int64_t i = 0; i < ref->numel(); ++i) {
          float sum = 0;
          for (int r = 0; r < S; ++r) {
            sum += float(((i * 7 + r * 13 + step * 5) % 41) - 20) / 64.0f;
          }
          ref->grads().data<float>()[i] = sum / float(S);
        }
        const StepStats a = zero.step(0.01), b = adamw.step(0.01);
        ASSERT_TRUE(a.applied);
        EXPECT_NEAR(a.grad_norm, b.grad_norm, 1e-12 * b.grad_norm);
        const Diff d = compare(zs->params(), ref->params());
        EXPECT_LT(d.max_rel, 1e-6) << "step " << step;
      }
      expect_ranks_agree(*world, zs->params());
    }
  }
}

// ZeRO-2: with three micro-batches GradSync reduce-scatters each, the later ones adding into the
// shard, from per-parameter gradients that are freed once handed over (no full gradient buffer);
// the optimizer then equals AdamW on
// the sum over micro-batches of the averages over ranks. Gradients are multiples of 1/64 and dp is
// 2 or 4, so every sum, average and x dp here is exact and the parameters must match bitwise.
TEST(Zero, Stage2AccumulatesMicroBatchesIntoTheShardFromStagedGradients) {
  auto world = distributed::testing::test_world();
  const int S = world->size(), R = world->rank();
  for (const int64_t bucket_bytes : {int64_t(4), int64_t(4 * 23), int64_t(4 * 1000)}) {
    SCOPED_TRACE("bucket_bytes " + std::to_string(bucket_bytes));
    const config::OptimConfig oc = testing_support::zero_test_optim(0.5f);
    auto zs = testing_support::odd_store(), ref = testing_support::odd_store();
    ZeroAdamW zero(*zs, oc, *world, bucket_bytes, /*stage=*/2);
    AdamW adamw(*ref, oc);
    auto sync = zero.make_grad_sync(*world, bucket_bytes);
    ASSERT_TRUE(sync->every_micro_batch());
    ASSERT_TRUE(sync->staged());
    ASSERT_TRUE(zs->grads_staged());
    EXPECT_FALSE(zs->grads().defined());  // no flat gradient buffer under ZeRO-2
    const int M = 3;
    for (int step = 1; step <= 3; ++step) {
      zs->zero_grads();
      for (int mb = 0; mb < M; ++mb) {
        sync->begin_micro_batch(mb, M);
        zs->reset_grad_progress();
        // Gradient staging: no gradient is resident between micro-batches (each was freed
        // once its bucket was handed to the reduce-scatter), and a parameter's gradient starts
        // from zeros (backward accumulates, +=). (EXPECT, not ASSERT: a rank leaving early would
        // leave its peers in a collective.)
        EXPECT_EQ(zs->grad_bytes_live(), 0) << "micro-batch " << mb << " of step " << step;
        for (const models::ParamInfo& info : zs->infos()) {
          const Tensor g = zs->grad(zs->find(info.spec.name));
          for (int64_t l = 0; l < info.numel; ++l) {
            EXPECT_EQ(g.data<float>()[l], 0.0f) << info.spec.name << " micro-batch " << mb;
            const int64_t i = info.offset + l;  // the pattern of fill_grads at flat index i
            g.data<float>()[l] = float(((i * 7 + R * 13 + (10 * step + mb) * 5) % 41) - 20) / 64.0f;
          }
        }
        EXPECT_EQ(zs->grad_bytes_live(), zs->numel() * 4);
        sync->on_ready(zs->numel() / 2);
        sync->finish();
        EXPECT_EQ(zs->grad_bytes_live(), 0);
      }
      // The peak is the whole (tiny) store here: every gradient is written before on_ready.
      EXPECT_EQ(zs->grad_bytes_peak(), zs->numel() * 4);
      for (int64_t i = 0; i < ref->numel(); ++i) {
        float sum = 0;
        for (int mb = 0; mb < M; ++mb) {
          float avg = 0;
          for (int r = 0; r < S; ++r) {
            avg += float(((i * 7 + r * 13 + (10 * step + mb) * 5) % 41) - 20) / 64.0f;
          }
          sum += avg / float(S);
        }
        ref->grads().data<float>()[i] = sum;
      }
      const StepStats a = zero.step(0.01), b = adamw.step(0.01);
      ASSERT_TRUE(a.applied);
      EXPECT_NEAR(a.grad_norm, b.grad_norm, 1e-12 * b.grad_norm);
      const Diff d = compare(zs->params(), ref->params());
      EXPECT_EQ(d.unequal, 0) << "step " << step << ", max rel diff " << d.max_rel;
    }
    expect_ranks_agree(*world, zs->params());
    // The parameter all-gather's output bytes: every bucket padded to dp shards, once per step.
    EXPECT_EQ(zero.take_comm_bytes(), 3 * int64_t(S) * zero.shards().shard_numel * 4);
    EXPECT_EQ(zero.take_comm_bytes(), 0);
    // M reduce-scatters per step, each of the whole buffer's bytes.
    EXPECT_EQ(sync->stats().bytes, 3 * M * zs->numel() * 4);
  }
}

TEST(Zero, GptEqualsPlainDataParallel) {
  expect_zero_equals_dp({"data.global_batch_size=8", "parallel.bucket_bytes=40000"}, "gpt");
}

TEST(Zero, GptWithGradientAccumulationEqualsPlainDataParallel) {
  expect_zero_equals_dp(
      {"data.global_batch_size=16", "train.micro_batches=2", "parallel.bucket_bytes=100000"},
      "gpt_accumulate");
}

// Under tensor parallelism each TP rank's ZeRO shard holds other slices of the split parameters:
// the clipping norm must add their squares over the TP group and count replicated ones once,
// as plain AdamW's models::tp_grad_l2_norm does (it once summed over the DP group only).
TEST(Zero, GptWithTensorParallelEqualsPlainDataParallel) {
  // TP 2 x DP 2: ctest runs this only on 4 ranks (train_zero_test_np4; the 2-rank run filters
  // it out).
  ASSERT_EQ(distributed::testing::test_world()->size(), 4) << "needs 4 ranks for TP 2 x DP 2";
  expect_zero_equals_dp(
      {"data.global_batch_size=8", "parallel.bucket_bytes=40000", "parallel.tensor_parallel=2"},
      "gpt_tp2");
}

// ZeRO-2 (gradients reduce-scattered on every micro-batch) equals plain data parallel too. With
// one micro-batch the arithmetic is ZeRO-1's, bitwise on 2 ranks. With two (kAccumulate), the
// averages of the micro-batches are added instead of the accumulated sum averaged: the same sums
// in another order, compared to 1e-6 (zero_equivalence.h says why optim.eps is 1e-4 there).

TEST(Zero, Stage2GptEqualsPlainDataParallel) {
  expect_zero_equals_dp({"data.global_batch_size=8", "parallel.bucket_bytes=40000"}, "gpt", 2);
}

TEST(Zero, Stage2GptWithGradientAccumulationEqualsPlainDataParallel) {
  expect_zero_equals_dp(
      concat({"data.global_batch_size=16", "parallel.bucket_bytes=100000"}, kAccumulate),
      "gpt_accumulate", 2, "configs/gpt_tiny.pbtxt", /*bitwise_np2=*/false);
}

// bf16 compute: the matmuls read the bf16 shadow, which ZeroAdamW refreshes after its all-gather.
// One micro-batch (bitwise on 2 ranks): with two, the f32 sums' last-bit differences flip bf16
// roundings of the shadow (2^-8 relative), measured 5e-6 after 5 steps, which says nothing about
// the communication.
TEST(Zero, Stage2GptBf16EqualsPlainDataParallel) {
  expect_zero_equals_dp(
      {"data.global_batch_size=8", "parallel.bucket_bytes=40000", "train.precision=BF16"},
      "gpt_bf16", 2);
}

// Recomputation: each block's forward runs again inside backward, so gradients are written and
// reported while recomputed activations come and go; the staged gradients must still be taken
// in bucket order and none written after it was handed over (ParamStore refuses that).
TEST(Zero, Stage2GptWithRecomputationEqualsPlainDataParallel) {
  const std::vector<std::string> sets = {"data.global_batch_size=8", "parallel.bucket_bytes=40000",
                                         "model.recompute_activations=true"};
  expect_zero_equals_dp(sets, "gpt_recompute", 2);
  expect_zero_equals_dp(concat(sets, kAccumulate), "gpt_recompute_accumulate", 2,
                        "configs/gpt_tiny.pbtxt", /*bitwise_np2=*/false);
}

TEST(Zero, Stage2WithTensorParallelEqualsPlainDataParallel) {
  ASSERT_EQ(distributed::testing::test_world()->size(), 4) << "needs 4 ranks for TP 2 x DP 2";
  expect_zero_equals_dp(concat({"data.global_batch_size=8", "parallel.bucket_bytes=40000",
                                "parallel.tensor_parallel=2"},
                               kAccumulate),
                        "gpt_tp2_accumulate", 2, "configs/gpt_tiny.pbtxt", false);
}

TEST(Zero, Stage2VitEqualsPlainDataParallel) {
  expect_model_equals_dp("vit", {}, 2);
}

TEST(Zero, Stage2ClipEqualsPlainDataParallel) {
  expect_model_equals_dp(
      "clip", {"model.clip.image.transformer.n_layers=1", "model.clip.text.transformer.n_layers=1"},
      2);
}

TEST(Zero, Stage2DitEqualsPlainDataParallel) {
  expect_model_equals_dp("dit", {}, 2);
}

// parallel.reduce_tied_grad_early at stage 2: GPT's tied-embedding gradient reduce-scattered in
// two parts, equal to plain DP with a lower gradient peak (zero_equivalence.cc).
TEST(Zero, Stage2TiedGradientReducedEarlyEqualsPlainDataParallelWithALowerPeak) {
  testing_support::expect_tied_grad_reduced_early(2);
}

// Gradient staging with a tied head at stage 2: the table's gradient built bucket by bucket, never
// dense (zero_equivalence.cc); bitwise equal to plain DP on 2 ranks, with f32 and bf16 compute.
TEST(Zero, Stage2TiedTableGradientIsBuiltBucketByBucket) {
  testing_support::expect_tied_table_built_bucket_by_bucket(2, /*bf16=*/false);
  testing_support::expect_tied_table_built_bucket_by_bucket(2, /*bf16=*/true);
}

TEST(Zero, OptimizerStateIsOneOverDpOfPlain) {
  auto world = distributed::testing::test_world();
  const int S = world->size();
  config::Config cfg = load("configs/gpt_tiny.pbtxt", {"parallel.bucket_bytes=40000"});
  auto model = models::make_model(cfg.model());
  model->params().init(1);
  const int64_t plain = AdamW(model->params(), cfg.optim()).state_bytes();
  const ZeroAdamW zero(model->params(), cfg.optim(), *world, cfg.parallel().bucket_bytes());
  const int64_t sharded = zero.state_bytes();
  std::printf(
      "[rank %d of %d] optimizer state: plain AdamW %lld bytes, ZeRO-1 %lld bytes "
      "(ratio %.4f, 1/dp = %.4f)\n",
      world->rank(), S, (long long)plain, (long long)sharded, double(sharded) / plain, 1.0 / S);
  EXPECT_EQ(plain, 9 * model->params().numel());  // m, v f32 + u8 mask
  // Exactly 1/dp up to padding (< dp elements per buffer).
  EXPECT_GE(sharded * S, plain);
  EXPECT_LE(sharded * S, plain + 9 * S * S);
}

}  // namespace
}  // namespace tessera::train
