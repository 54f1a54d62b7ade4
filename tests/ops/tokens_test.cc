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

// Bytes are moved, so any dtype works; with C = 1 it is a column-block copy between matrices
// (GPT's vocabulary slices). bf16 bit patterns, compared as bits.
TEST_P(TokensTest, CopyTokensMovesAnyDtypeAndColumnBlocks) {
  const int64_t N = 4, Vs = 9, Vd = 6, cols = 5;
  Tensor src_host = Tensor::empty({N, Vs, 1}, DType::bf16, Device::cpu());
  Tensor dst_host = Tensor::empty({N, Vd, 1}, DType::bf16, Device::cpu());
  auto* s = static_cast<uint16_t*>(src_host.raw_data());
  auto* d = static_cast<uint16_t*>(dst_host.raw_data());
  for (int64_t i = 0; i < N * Vs; ++i) s[i] = uint16_t(0x3f00 + i);
  for (int64_t i = 0; i < N * Vd; ++i) d[i] = uint16_t(0xbf00 + i);
  Tensor src = to_device(src_host, device()), dst = to_device(dst_host, device());
  ops::copy_tokens(src, 3, dst, 1, cols);  // columns 3..7 -> 1..5
  Tensor got = to_device(dst, Device::cpu());
  const auto* g = static_cast<const uint16_t*>(got.raw_data());
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t c = 0; c < Vd; ++c) {
      const uint16_t expect = c >= 1 && c < 1 + cols ? s[r * Vs + c + 2] : d[r * Vd + c];
      EXPECT_EQ(expect, g[r * Vd + c]) << "row " << r << " column " << c;
    }
  }
  // Mixed dtypes are refused, naming the op.
  Tensor f32 = Tensor::zeros({N, Vd, 1}, DType::f32, device());
  EXPECT_THROW(ops::copy_tokens(src, 0, f32, 0, 1), Error);
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
