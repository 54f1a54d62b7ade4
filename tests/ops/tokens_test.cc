#include "ops/tokens.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"

namespace tessera {
namespace {

class TokensTest : public testing::DeviceTest {};

TEST_P(TokensTest, CopyTokensMovesRowRangesPerSample) {
  const int64_t B = 3, Ts = 5, Td = 7, C = 4;
  Tensor src_host = testing::uniform({B, Ts, C}, 9);
  Tensor dst_host = testing::uniform({B, Td, C}, 10);
  Tensor src = to_device(src_host, device()), dst = to_device(dst_host, device());
  ops::copy_tokens(src, 1, dst, 3, 4);  // src rows 1..4 -> dst rows 3..6
  Tensor got = to_device(dst, Device::cpu());
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < Td; ++t) {
      const float* expect = t >= 3 ? src_host.data<float>() + (b * Ts + t - 2) * C
                                   : dst_host.data<float>() + (b * Td + t) * C;
      EXPECT_EQ(0, std::memcmp(got.data<float>() + (b * Td + t) * C, expect, C * sizeof(float)))
          << "b " << b << " t " << t;
    }
  }
}

TEST_P(TokensTest, BadArgumentsNameOpAndShapes) {
  Tensor a = Tensor::zeros({2, 3, 4}, DType::f32, device());
  Tensor b = Tensor::zeros({2, 3, 5}, DType::f32, device());
  EXPECT_THROW(ops::copy_tokens(a, 0, b, 0, 1), Error);
  EXPECT_THROW(ops::copy_tokens(a, 2, a.slice(0, 2), 0, 2), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(TokensTest);

}  // namespace
}  // namespace tessera
