// GELU and SiLU, the activation family: forward and backward against PyTorch over each one's
// regimes, in place, thread-count independence and argument errors.
#include "ops/activation.h"

#include <gtest/gtest.h>

#include <cmath>
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
const Activation kSilu{"silu", ops::silu_forward, ops::silu_backward, kSiluExtremes, 8.0f, 1e-6};

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

// CPU only (thread count is a CPU notion).
TEST(ActivationCpu, SameForAnyThreadCount) {
  const Shape s = {5, 70001};
  Tensor x = testing::normal(s, 1, 3.0f), dy = testing::normal(s, 2);
  for (const Activation* a : {&kGelu, &kSilu}) {
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
  for (const Activation* a : {&kGelu, &kSilu}) {
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
