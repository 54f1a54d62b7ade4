#include "core/philox.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/random.h"
#include "core/threads.h"

namespace tessera {
namespace {

// Known-answer vectors published with Random123 (kat_vectors, philox4x32 with 10 rounds).
TEST(Philox, MatchesRandom123KnownAnswers) {
  struct Kat {
    Philox4x32 ctr;
    uint32_t k0, k1;
    Philox4x32 expected;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffff,
       0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0xa4093822,
       0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat& k : kats) {
    Philox4x32 r = philox4x32_10(k.ctr, k.k0, k.k1);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(r.v[i], k.expected.v[i]) << "word " << i;
  }
}

TEST(Philox, FillsAreIndependentOfThreadCountAndPosition) {
  Tensor a = Tensor::empty({1001}, DType::f32), b = Tensor::empty({1001}, DType::f32);
  int threads = num_threads();
  set_num_threads(1);
  fill_normal(a, 42, 7, 0, 1);
  set_num_threads(std::max(2, threads));
  fill_normal(b, 42, 7, 0, 1);
  set_num_threads(threads);
  for (int i = 0; i < 1001; ++i) ASSERT_EQ(a.data<float>()[i], b.data<float>()[i]) << i;
  // A different stream or seed gives different numbers.
  fill_normal(b, 42, 8, 0, 1);
  EXPECT_NE(a.data<float>()[0], b.data<float>()[0]);
}

TEST(Philox, NormalAndUniformHaveTheRightMoments) {
  const int n = 200000;
  Tensor t = Tensor::empty({n}, DType::f32);
  fill_normal(t, 3, 0, 2.0f, 0.5f);
  double sum = 0, sq = 0;
  for (int i = 0; i < n; ++i) sum += t.data<float>()[i];
  double mean = sum / n;
  for (int i = 0; i < n; ++i) sq += (t.data<float>()[i] - mean) * (t.data<float>()[i] - mean);
  EXPECT_NEAR(mean, 2.0, 0.01);
  EXPECT_NEAR(std::sqrt(sq / n), 0.5, 0.01);
  fill_uniform(t, 3, 1, -1.0f, 3.0f);
  float lo = 1e9, hi = -1e9;
  sum = 0;
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, t.data<float>()[i]);
    hi = std::max(hi, t.data<float>()[i]);
    sum += t.data<float>()[i];
  }
  EXPECT_GE(lo, -1.0f);
  EXPECT_LT(hi, 3.0f);
  EXPECT_NEAR(sum / n, 1.0, 0.02);
}

}  // namespace
}  // namespace tessera
