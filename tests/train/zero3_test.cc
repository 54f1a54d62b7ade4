// ZeRO stage 3 (parallel.zero_stage = 3: parameters sharded too, gathered per unit) on 2 and 4
// ranks (ctest train_zero3_test and _np4), through zero_equivalence.h as zero_test.cc's stages 1
// and 2: the trainer equals plain DP for GPT (one and two micro-batches, recomputation, bf16
// compute, TP 2 x DP 2), ViT, CLIP (GradCache; a frozen tower) and DiT, with 1/dp of the
// parameters per rank and never all of them gathered at once (metrics.jsonl param_shard_bytes,
// param_gathered_peak_bytes); GPT's tied gradient reduced early and built bucket by bucket; what
// stage 3 does not support yet is refused at config load.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/distributed/mpi_test_env.h"
#include "tests/support/reference.h"
#include "train/config.h"

#include "tests/train/zero_equivalence.h"

namespace tessera::train {
namespace {

using testing_support::concat;
using testing_support::expect_model_equals_dp;
using testing_support::expect_zero_equals_dp;
using testing_support::kAccumulate;

// ZeRO-3: the parameters sharded in the optimizer's layout (buckets cut at the gather units),
// gathered unit by unit with prefetch in forward and backward, the shard updated in place. One
// micro-batch: bitwise equal to plain DP on 2 ranks (the forward reads the same floats, and the
// reduce-scatter adds the same two floats per element as the all-reduce). Several: the averages
// are added as at stage 2 (kAccumulate).
TEST(Zero, Stage3GptEqualsPlainDataParallel) {
  expect_zero_equals_dp({"data.global_batch_size=8", "parallel.bucket_bytes=40000"}, "gpt", 3);
}

TEST(Zero, Stage3GptWithGradientAccumulationEqualsPlainDataParallel) {
  expect_zero_equals_dp(
      concat({"data.global_batch_size=16", "parallel.bucket_bytes=100000"}, kAccumulate),
      "gpt_accumulate", 3, "configs/gpt_tiny.pbtxt", /*bitwise_np2=*/false);
}

// Recomputation: every block's forward runs again inside backward, reading its unit (gathered
// for the backward anyway) once more before its gradients are written.
TEST(Zero, Stage3GptWithRecomputationEqualsPlainDataParallel) {
  const std::vector<std::string> sets = {"data.global_batch_size=8", "parallel.bucket_bytes=40000",
                                         "model.recompute_activations=true"};
  expect_zero_equals_dp(sets, "gpt_recompute", 3);
  expect_zero_equals_dp(concat(sets, kAccumulate), "gpt_recompute_accumulate", 3,
                        "configs/gpt_tiny.pbtxt", /*bitwise_np2=*/false);
}

// parallel.reduce_tied_grad_early at stage 3: GPT's tied-embedding gradient reduce-scattered in
// two parts, equal to plain DP with a lower gradient peak (zero_equivalence.cc).
TEST(Zero, Stage3TiedGradientReducedEarlyEqualsPlainDataParallelWithALowerPeak) {
  testing_support::expect_tied_grad_reduced_early(3);
}

// Gradient staging with a tied head at stage 3: the table's gradient built bucket by bucket, never
// dense (zero_equivalence.cc); bitwise equal to plain DP on 2 ranks.
TEST(Zero, Stage3TiedTableGradientIsBuiltBucketByBucket) {
  testing_support::expect_tied_table_built_bucket_by_bucket(3, /*bf16=*/false);
}

// The same with bf16 compute. Here the 1 MiB embedding unit outweighs the rest of the model, so
// its gathered f32 buffer and bf16 copy (1.5 MiB) exceed the f32 parameters' bytes: the helper
// bounds the gathered peak by two units' f32 + bf16 bytes (and by all parameters' f32 + bf16
// bytes) instead. Bitwise equal to plain DP bf16 on 2 ranks: each unit is converted once per
// gather with the conversion stage 0 applies to its whole buffer.
TEST(Zero, Stage3TiedTableGradientIsBuiltBucketByBucketWithBf16) {
  testing_support::expect_tied_table_built_bucket_by_bucket(3, /*bf16=*/true);
}

// train.freeze (CLIP's image tower locked, LiT): the frozen parameters are sharded and gathered
// too but never updated; the trainable ones equal plain DP's.
TEST(Zero, Stage3WithAFrozenTowerEqualsPlainDataParallel) {
  expect_zero_equals_dp({"data.global_batch_size=8", "parallel.bucket_bytes=40000",
                         "model.clip.image.transformer.n_layers=1",
                         "model.clip.text.transformer.n_layers=1", "train.freeze=image.*"},
                        "clip_lit", 3, "configs/clip_tiny.pbtxt");
}

// bf16 compute: the f32 master shards are gathered and each unit converted once, the same
// conversion stage 0 applies to its whole buffer: bitwise equal with one micro-batch on 2 ranks.
TEST(Zero, Stage3GptBf16EqualsPlainDataParallel) {
  expect_zero_equals_dp(
      {"data.global_batch_size=8", "parallel.bucket_bytes=40000", "train.precision=BF16"},
      "gpt_bf16", 3);
}

// TP 2 x DP 2 (4 ranks): each TP rank's store shards its TP slices over its DP group; the
// clipping norm spans both groups as at stages 1 and 2.
TEST(Zero, Stage3WithTensorParallelEqualsPlainDataParallel) {
  ASSERT_EQ(distributed::testing::test_world()->size(), 4) << "needs 4 ranks for TP 2 x DP 2";
  expect_zero_equals_dp(
      {"data.global_batch_size=8", "parallel.bucket_bytes=40000", "parallel.tensor_parallel=2"},
      "gpt_tp2", 3);
  expect_zero_equals_dp(concat({"data.global_batch_size=8", "parallel.bucket_bytes=40000",
                                "parallel.tensor_parallel=2"},
                               kAccumulate),
                        "gpt_tp2_accumulate", 3, "configs/gpt_tiny.pbtxt", false);
}

// What stage 3 does not handle yet is refused when the config is loaded, naming the field.
TEST(Zero, Stage3RefusesWhatItDoesNotSupportYet) {
  for (const auto& [set, field] :
       std::vector<std::pair<std::string, std::string>>{{"train.device=CUDA", "train.device"}}) {
    const auto c =
        load_config(testing::source_path("configs/gpt_tiny.pbtxt"), {"parallel.zero_stage=3", set});
    ASSERT_FALSE(c.ok()) << set;
    EXPECT_NE(c.status().message().find(field), std::string::npos) << c.status();
    EXPECT_NE(c.status().message().find("zero_stage = 3"), std::string::npos) << c.status();
  }
  EXPECT_FALSE(
      load_config(testing::source_path("configs/gpt_tiny.pbtxt"), {"parallel.zero_stage=4"}).ok());
}

// ZeRO-3 on the other models, one and two micro-batches: ViT, CLIP (two micro-batches: GradCache,
// whose no-grad forward, recomputed forward and backward per micro-batch gather every unit
// again; the loss reads logit_scale from unit "other" between the towers), DiT.
TEST(Zero, Stage3VitEqualsPlainDataParallel) {
  expect_model_equals_dp("vit", {}, 3);
}

TEST(Zero, Stage3ClipEqualsPlainDataParallel) {
  expect_model_equals_dp(
      "clip", {"model.clip.image.transformer.n_layers=1", "model.clip.text.transformer.n_layers=1"},
      3);
}

TEST(Zero, Stage3DitEqualsPlainDataParallel) {
  expect_model_equals_dp("dit", {}, 3);
}

}  // namespace
}  // namespace tessera::train
