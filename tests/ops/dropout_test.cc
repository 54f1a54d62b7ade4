// Keyed dropout and drop-path (ops/dropout.h): the masks' statistics (kept share within 5
// standard errors of 1 - p, kept values scaled by exactly 1/(1-p), whole rows for drop-path),
// determinism (the same key gives bitwise the same output, on every device and thread count),
// keying by position (rows computed as a slice equal the same rows of the whole batch; another
// position or stream gives another mask), and backward = forward on dy.
#include "ops/dropout.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"

namespace tessera {
namespace {

class DropoutTest : public testing::DeviceTest {
 protected:
  Tensor run(const Tensor& x, float p, float path_p, const ops::DropoutKey& key) {
    Tensor in = to_device(x, device());
    Tensor out = Tensor::empty(x.shape(), DType::f32, device());
    ops::keyed_dropout(in, out, p, path_p, key);
    return testing::to_cpu_f32(out);
  }
};

TEST_P(DropoutTest, ElementMaskStatistics) {
  const int64_t B = 64, N = 1001;  // N not a multiple of 4: the last Philox block is partial
  const Tensor x = testing::uniform({B, N}, 1, 0.5f, 1.5f);  // never 0
  for (float p : {0.1f, 0.5f}) {
    const Tensor y = run(x, p, 0, {7, 3, 100});
    int64_t kept = 0;
    for (int64_t i = 0; i < B * N; ++i) {
      const float v = y.data<float>()[i];
      if (v == 0) continue;
      ++kept;
      ASSERT_EQ(v, x.data<float>()[i] * (1.0f / (1.0f - p))) << "element " << i;
    }
    const double n = double(B * N), share = kept / n;
    EXPECT_NEAR(share, 1 - p, 5 * std::sqrt(p * (1 - p) / n)) << "p " << p;
  }
}

TEST_P(DropoutTest, DropPathDropsWholeRows) {
  const int64_t B = 4000, N = 6;
  const Tensor x = testing::uniform({B, N}, 2, 0.5f, 1.5f);
  const float path_p = 0.25f;
  const Tensor y = run(x, 0, path_p, {7, 3, 0});
  int64_t kept = 0;
  for (int64_t b = 0; b < B; ++b) {
    const bool keep = y.data<float>()[b * N] != 0;
    kept += keep;
    for (int64_t j = 0; j < N; ++j) {
      const float want = keep ? x.data<float>()[b * N + j] * (1.0f / (1.0f - path_p)) : 0.0f;
      ASSERT_EQ(y.data<float>()[b * N + j], want) << "row " << b;
    }
  }
  EXPECT_NEAR(double(kept) / B, 1 - path_p, 5 * std::sqrt(path_p * (1 - path_p) / B));
}

TEST_P(DropoutTest, KeyedByPositionDeterministicAndLinear) {
  const int64_t B = 10, N = 37;
  const Tensor x = testing::normal({B, N}, 3);
  const ops::DropoutKey key{11, 5, 1000};
  const Tensor a = run(x, 0.3f, 0.2f, key), b = run(x, 0.3f, 0.2f, key);
  EXPECT_EQ(0, std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()));
  // Rows 4..9 alone, keyed from position 1004, are rows 4..9 of the whole.
  Tensor tail = Tensor::empty({6, N}, DType::f32);
  std::memcpy(tail.data<float>(), x.data<float>() + 4 * N, tail.nbytes());
  const Tensor t = run(tail, 0.3f, 0.2f, {11, 5, 1004});
  EXPECT_EQ(0, std::memcmp(t.data<float>(), a.data<float>() + 4 * N, t.nbytes()));
  // Another position or stream: another mask.
  EXPECT_GT(testing::diff(run(x, 0.3f, 0.2f, {11, 5, 2000}), a).max_abs, 0);
  EXPECT_GT(testing::diff(run(x, 0.3f, 0.2f, {11, 6, 1000}), a).max_abs, 0);
  // Linear: the gradient is the same op on dy; masks do not depend on the values.
  Tensor twice = Tensor::empty({B, N}, DType::f32);
  for (int64_t i = 0; i < B * N; ++i) twice.data<float>()[i] = 2 * x.data<float>()[i];
  const Tensor d = run(twice, 0.3f, 0.2f, key);
  for (int64_t i = 0; i < B * N; ++i) ASSERT_EQ(d.data<float>()[i], 2 * a.data<float>()[i]);
  // In place (out aliases x).
  Tensor inplace = to_device(x, device());
  ops::keyed_dropout(inplace, inplace, 0.3f, 0.2f, key);
  EXPECT_EQ(0,
            std::memcmp(testing::to_cpu_f32(inplace).data<float>(), a.data<float>(), a.nbytes()));
}

TEST_P(DropoutTest, BadRatesAreRefused) {
  const Tensor x = to_device(testing::normal({2, 3}, 4), device());
  EXPECT_THROW(ops::keyed_dropout(x, x, 1.0f, 0, {}), Error);
  EXPECT_THROW(ops::keyed_dropout(x, x, 0, -0.1f, {}), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(DropoutTest);

}  // namespace
}  // namespace tessera
