// GELU (tanh and erf forms), QuickGELU and SiLU, the activation family: forward and backward
// against PyTorch over each one's regimes, in place, thread-count independence and argument errors.
#include "ops/activation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/threads.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class ActivationTest : public testing::DeviceTest {};

// One activation under test: its ops, its name in tests/reference/ref_activation.py, and where
// its input values are interesting.
struct Activation {
  const char* name;
  void (*forward)(const Tensor& x, const Tensor& y);
  void (*backward)(const Tensor& dy, const Tensor& x, const Tensor& dx);
  std::vector<float> extremes;
  float range;  // random inputs in [-range, range]
  double tolerance;
};

// Values across each one's regimes, including where exp over- and underflows.
const std::vector<float> kGeluExtremes = {-1e4f, -100.f, -20.f, -9.f, -3.f, -1e-3f, -1e-7f, 0.f,
                                          1e-7f, 1e-3f,  0.5f,  3.f,  9.f,  20.f,   100.f,  1e4f};
const std::vector<float> kSiluExtremes = {-1e4f, -100.f, -89.f, -20.f, -3.f, -1e-3f, -1e-7f, 0.f,
                                          1e-7f, 1e-3f,  0.5f,  3.f,   20.f, 88.f,   100.f,  1e4f};
const Activation kGelu{"gelu", ops::gelu_forward, ops::gelu_backward, kGeluExtremes, 6.0f, 1e-5};
const Activation kGeluErf{
    "gelu_erf", ops::gelu_erf_forward, ops::gelu_erf_backward, kGeluExtremes, 6.0f, 1e-6};
const Activation kQuickGelu{
    "quick_gelu", ops::quick_gelu_forward, ops::quick_gelu_backward, kSiluExtremes, 8.0f, 1e-6};
const Activation kSilu{"silu", ops::silu_forward, ops::silu_backward, kSiluExtremes, 8.0f, 1e-6};
const std::vector<const Activation*> kAll = {&kGelu, &kGeluErf, &kQuickGelu, &kSilu};

Tensor from_values(const std::vector<float>& v) {
  Tensor t = Tensor::empty({int64_t(v.size())}, DType::f32);
  std::memcpy(t.data<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

void expect_matches_torch(const Activation& a, Device device) {
  const std::vector<Shape> shapes = {{1}, {7}, {65}, {127, 129}, {3, 1 << 16}, {16}};
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < shapes.size(); ++c) {
    attrs[case_key(c, "fn")] = a.name;
    in[case_key(c, "x")] = c + 1 == shapes.size()
                               ? from_values(a.extremes)
                               : testing::uniform(shapes[c], 2 * c, -a.range, a.range);
    in[case_key(c, "dy")] = testing::normal(shapes[c], 2 * c + 1);
  }
  NamedTensors ref = testing::run_reference("activation", in, attrs);
  const std::string name = a.name;
  for (size_t c = 0; c < shapes.size(); ++c) {
    const std::string what = shape_str(shapes[c]);
    Tensor x = to_device(in[case_key(c, "x")], device);
    Tensor dy = to_device(in[case_key(c, "dy")], device);
    Tensor y = Tensor::empty(shapes[c], DType::f32, device);
    a.forward(x, y);
    EXPECT_ALL_CLOSE(y, ref[case_key(c, "y")], a.tolerance, name + " y " + what);
    Tensor dx = Tensor::empty(shapes[c], DType::f32, device);
    a.backward(dy, x, dx);
    EXPECT_ALL_CLOSE(dx, ref[case_key(c, "dx")], a.tolerance, name + " dx " + what);
    // In place: y may alias x, dx may alias dy.
    a.backward(dy, x, dy);
    EXPECT_ALL_CLOSE(dy, ref[case_key(c, "dx")], a.tolerance, name + " dx in place " + what);
    a.forward(x, x);
    EXPECT_ALL_CLOSE(x, ref[case_key(c, "y")], a.tolerance, name + " in place " + what);
  }
}

TEST_P(ActivationTest, GeluMatchesTorch) {
  expect_matches_torch(kGelu, device());
}
TEST_P(ActivationTest, GeluErfMatchesTorch) {
  expect_matches_torch(kGeluErf, device());
}
TEST_P(ActivationTest, QuickGeluMatchesTorch) {
  expect_matches_torch(kQuickGelu, device());
}
TEST_P(ActivationTest, SiluMatchesTorch) {
  expect_matches_torch(kSilu, device());
}

// Element-by-element relative accuracy where values are small (the tensor-scale measure above
// would hide errors there): the sigmoid form has no cancellation near zero.
TEST_P(ActivationTest, GeluAccurateNearZero) {
  Tensor x = testing::uniform({1000}, 9, -1e-3f, 1e-3f);
  Tensor y = Tensor::empty({1000}, DType::f32, device());
  ops::gelu_forward(to_device(x, device()), y);
  Tensor yh = testing::to_cpu_f32(y);
  for (int64_t i = 0; i < 1000; ++i) {
    const double v = x.data<float>()[i];
    const double expect =
        0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    EXPECT_NEAR(yh.data<float>()[i], expect, 1e-6 * std::abs(expect)) << v;
  }
}

// The exact GELU element by element against double-precision erfc, over the left tail where
// x Phi(x) is tiny (the tensor-scale measure would hide a relative error there), zero and the
// right side: the erfc fit keeps its fractional accuracy everywhere. Its derivative likewise.
// Prints the worst relative error of each.
TEST_P(ActivationTest, GeluErfRelativeAccuracyElementwise) {
  const int64_t n = 2001;
  Tensor x = Tensor::empty({n}, DType::f32);
  for (int64_t i = 0; i < n; ++i) x.data<float>()[i] = -12.0f + 18.0f * float(i) / float(n - 1);
  Tensor ones = Tensor::empty({n}, DType::f32);
  for (int64_t i = 0; i < n; ++i) ones.data<float>()[i] = 1.0f;
  Tensor y = Tensor::empty({n}, DType::f32, device()),
         dx = Tensor::empty({n}, DType::f32, device());
  ops::gelu_erf_forward(to_device(x, device()), y);
  ops::gelu_erf_backward(to_device(ones, device()), to_device(x, device()), dx);
  Tensor yh = testing::to_cpu_f32(y), dh = testing::to_cpu_f32(dx);
  double worst_y = 0, worst_dx = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x.data<float>()[i];
    if (v == 0) continue;
    const double cdf = 0.5 * std::erfc(-v / std::sqrt(2.0));
    const double pdf = std::exp(-0.5 * v * v) / std::sqrt(2.0 * M_PI);
    const double expect = v * cdf, dexpect = cdf + v * pdf;
    // 2e-6, plus the f32 rounding of exp's argument -x^2/2 in the far tail (values < 1e-6).
    const double rel = 2e-6 + 1.5e-7 * v * v;
    EXPECT_NEAR(yh.data<float>()[i], expect, rel * std::abs(expect)) << v;
    // The derivative cancels near x = -0.75 (its zero): bound by the size of its terms.
    EXPECT_NEAR(dh.data<float>()[i], dexpect, rel * (cdf + std::abs(v) * pdf)) << v;
    if (std::abs(v) <= 5) {
      worst_y = std::max(worst_y, std::abs(yh.data<float>()[i] - expect) / std::abs(expect));
      worst_dx =
          std::max(worst_dx, std::abs(dh.data<float>()[i] - dexpect) / (cdf + std::abs(v) * pdf));
    }
  }
  std::printf("gelu_erf |x| <= 5: worst relative error y %.3g, dx %.3g\n", worst_y, worst_dx);
}

// CPU only (thread count is a CPU notion).
TEST(ActivationCpu, SameForAnyThreadCount) {
  const Shape s = {5, 70001};
  Tensor x = testing::normal(s, 1, 3.0f), dy = testing::normal(s, 2);
  for (const Activation* a : kAll) {
    auto run = [&](int threads) {
      const int saved = num_threads();
      set_num_threads(threads);
      Tensor y = Tensor::empty(s, DType::f32), dx = Tensor::empty(s, DType::f32);
      a->forward(x, y);
      a->backward(dy, x, dx);
      set_num_threads(saved);
      return std::vector<Tensor>{y, dx};
    };
    std::vector<Tensor> one = run(1), many = run(std::max(2, num_threads()));
    for (size_t i = 0; i < one.size(); ++i) {
      EXPECT_EQ(std::memcmp(one[i].raw_data(), many[i].raw_data(), one[i].nbytes()), 0)
          << a->name << " " << i;
    }
  }
}

TEST_P(ActivationTest, BadArgumentsNameOpAndShapes) {
  Tensor x = Tensor::zeros({4, 3}, DType::f32, device());
  Tensor y = Tensor::zeros({4, 2}, DType::f32, device());
  Tensor i = Tensor::zeros({4, 3}, DType::i32, device());
  for (const Activation* a : kAll) {
    const std::string name = a->name;
    try {
      a->forward(x, y);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()),
                name + "_forward: y must be f32(4, 3), got f32(4, 2) " + device().str());
    }
    EXPECT_THROW(a->forward(i, i), Error);
    EXPECT_THROW(a->backward(x, x, y), Error);
  }
}

TESSERA_INSTANTIATE_DEVICE_TESTS(ActivationTest);

}  // namespace
}  // namespace tessera
