#include "ops/activation.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class ActivationTest : public testing::DeviceTest {};

// Values across GELU's regimes, including where exp(-2u) over- and underflows.
Tensor extremes() {
  const float v[] = {-1e4f, -100.f, -20.f, -9.f, -3.f, -1e-3f, -1e-7f, 0.f,
                     1e-7f, 1e-3f,  0.5f,  3.f,  9.f,  20.f,   100.f,  1e4f};
  Tensor t = Tensor::empty({16}, DType::f32);
  for (int i = 0; i < 16; ++i) t.data<float>()[i] = v[i];
  return t;
}

TEST_P(ActivationTest, GeluMatchesTorch) {
  const std::vector<Shape> shapes = {{1}, {7}, {65}, {127, 129}, {3, 1 << 16}, {16}};
  NamedTensors in;
  for (size_t c = 0; c < shapes.size(); ++c) {
    in[case_key(c, "x")] =
        c + 1 == shapes.size() ? extremes() : testing::uniform(shapes[c], 2 * c, -6.0f, 6.0f);
    in[case_key(c, "dy")] = testing::normal(shapes[c], 2 * c + 1);
  }
  NamedTensors ref = testing::run_reference("activation", in);
  for (size_t c = 0; c < shapes.size(); ++c) {
    const std::string what = shape_str(shapes[c]);
    Tensor x = to_device(in[case_key(c, "x")], device());
    Tensor dy = to_device(in[case_key(c, "dy")], device());
    Tensor y = Tensor::empty(shapes[c], DType::f32, device());
    ops::gelu_forward(x, y);
    EXPECT_ALL_CLOSE(y, ref[case_key(c, "y")], 1e-5, "gelu y " + what);
    Tensor dx = Tensor::empty(shapes[c], DType::f32, device());
    ops::gelu_backward(dy, x, dx);
    EXPECT_ALL_CLOSE(dx, ref[case_key(c, "dx")], 1e-5, "gelu dx " + what);
    // In place: y may alias x, dx may alias dy.
    ops::gelu_forward(x, x);
    EXPECT_ALL_CLOSE(x, ref[case_key(c, "y")], 1e-5, "gelu in place " + what);
    x = to_device(in[case_key(c, "x")], device());
    ops::gelu_backward(dy, x, dy);
    EXPECT_ALL_CLOSE(dy, ref[case_key(c, "dx")], 1e-5, "gelu dx in place " + what);
  }
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

TEST_P(ActivationTest, BadArgumentsNameOpAndShapes) {
  Tensor x = Tensor::zeros({4, 3}, DType::f32, device());
  Tensor y = Tensor::zeros({4, 2}, DType::f32, device());
  Tensor i = Tensor::zeros({4, 3}, DType::i32, device());
  try {
    ops::gelu_forward(x, y);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "gelu_forward: y must be f32(4, 3), got f32(4, 2) " + device().str());
  }
  EXPECT_THROW(ops::gelu_forward(i, i), Error);
  EXPECT_THROW(ops::gelu_backward(x, x, y), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(ActivationTest);

}  // namespace
}  // namespace tessera
