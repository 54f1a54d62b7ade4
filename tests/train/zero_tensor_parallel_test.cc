// ZeRO-2 and -3 under tensor parallel 2 x data parallel 2 (4 ranks; ctest
// train_zero_tensor_parallel_test) equal plain DP on the same layout for ViT, CLIP (one layer per
// tower) and DiT, with one micro-batch bitwise (the DP group of 2 adds two floats per element in
// either collective) and with two within 1e-6 (kAccumulate); GPT stage 2 with one micro-batch
// (GPT's other cases: zero_test.cc, zero3_test.cc). Each TP rank's store shards its own slices
// over its DP group; the clipping norm spans both groups.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/distributed/mpi_test_env.h"

#include "tests/train/zero_equivalence.h"

namespace tessera::train {
namespace {

using testing_support::expect_model_equals_dp;

const std::vector<std::string> kClipOneLayer = {"model.clip.image.transformer.n_layers=1",
                                                "model.clip.text.transformer.n_layers=1"};

std::vector<std::string> tp2(std::vector<std::string> sets) {
  sets.push_back("parallel.tensor_parallel=2");
  return sets;
}

class ZeroTensorParallel : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    ASSERT_EQ(distributed::testing::test_world()->size(), 4) << "needs 4 ranks for TP 2 x DP 2";
  }
};

TEST_P(ZeroTensorParallel, VitEqualsPlainDataParallel) {
  expect_model_equals_dp("vit", tp2({}), GetParam(), "vit_tp2");
}

TEST_P(ZeroTensorParallel, ClipEqualsPlainDataParallel) {
  expect_model_equals_dp("clip", tp2(kClipOneLayer), GetParam(), "clip_tp2");
}

TEST_P(ZeroTensorParallel, DitEqualsPlainDataParallel) {
  expect_model_equals_dp("dit", tp2({}), GetParam(), "dit_tp2");
}

INSTANTIATE_TEST_SUITE_P(Stage, ZeroTensorParallel, ::testing::Values(2, 3),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::to_string(info.param);
                         });

// Stage 2 with one micro-batch (zero_test.cc runs it with two).
TEST(ZeroTensorParallelGpt, Stage2EqualsPlainDataParallel) {
  ASSERT_EQ(distributed::testing::test_world()->size(), 4) << "needs 4 ranks for TP 2 x DP 2";
  testing_support::expect_zero_equals_dp(
      tp2({"data.global_batch_size=8", "parallel.bucket_bytes=40000"}), "gpt_tp2", 2);
}

}  // namespace
}  // namespace tessera::train
