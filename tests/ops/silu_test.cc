#include "ops/silu.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/threads.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class SiluTest : public testing::DeviceTest {};

// Values across SiLU's regimes, including where exp(-x) over- and underflows.
Tensor extremes() {
  const float v[] = {-1e4f, -100.f, -89.f, -20.f, -3.f, -1e-3f, -1e-7f, 0.f,
                     1e-7f, 1e-3f,  0.5f,  3.f,   20.f, 88.f,   100.f,  1e4f};
  Tensor t = Tensor::empty({16}, DType::f32);
  for (int i = 0; i < 16; ++i) t.data<float>()[i] = v[i];
  return t;
}

TEST_P(SiluTest, MatchesTorch) {
  const std::vector<Shape> shapes = {{1}, {7}, {65}, {127, 129}, {3, 1 << 16}, {16}};
  NamedTensors in;
  for (size_t c = 0; c < shapes.size(); ++c) {
    in[case_key(c, "x")] =
        c + 1 == shapes.size() ? extremes() : testing::uniform(shapes[c], 2 * c, -8.0f, 8.0f);
    in[case_key(c, "dy")] = testing::normal(shapes[c], 2 * c + 1);
  }
  NamedTensors ref = testing::run_reference("silu", in);
  for (size_t c = 0; c < shapes.size(); ++c) {
    const std::string what = shape_str(shapes[c]);
    Tensor x = to_device(in[case_key(c, "x")], device());
    Tensor dy = to_device(in[case_key(c, "dy")], device());
    Tensor y = Tensor::empty(shapes[c], DType::f32, device());
    ops::silu_forward(x, y);
    EXPECT_ALL_CLOSE(y, ref[case_key(c, "y")], 1e-6, "silu y " + what);
    Tensor dx = Tensor::empty(shapes[c], DType::f32, device());
    ops::silu_backward(dy, x, dx);
    EXPECT_ALL_CLOSE(dx, ref[case_key(c, "dx")], 1e-6, "silu dx " + what);
    // In place: y may alias x, dx may alias dy.
    ops::silu_backward(dy, x, dy);
    EXPECT_ALL_CLOSE(dy, ref[case_key(c, "dx")], 1e-6, "silu dx in place " + what);
    ops::silu_forward(x, x);
    EXPECT_ALL_CLOSE(x, ref[case_key(c, "y")], 1e-6, "silu in place " + what);
  }
}

// CPU only (thread count is a CPU notion).
TEST(SiluCpu, SameForAnyThreadCount) {
  const Shape s = {5, 70001};
  Tensor x = testing::normal(s, 1, 3.0f), dy = testing::normal(s, 2);
  auto run = [&](int threads) {
    const int saved = num_threads();
    set_num_threads(threads);
    Tensor y = Tensor::empty(s, DType::f32), dx = Tensor::empty(s, DType::f32);
    ops::silu_forward(x, y);
    ops::silu_backward(dy, x, dx);
    set_num_threads(saved);
    return std::vector<Tensor>{y, dx};
  };
  std::vector<Tensor> one = run(1), many = run(std::max(2, num_threads()));
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(std::memcmp(one[i].raw_data(), many[i].raw_data(), one[i].nbytes()), 0) << i;
  }
}

TEST_P(SiluTest, BadArgumentsNameOpAndShapes) {
  Tensor x = Tensor::zeros({4, 3}, DType::f32, device());
  Tensor y = Tensor::zeros({4, 2}, DType::f32, device());
  Tensor i = Tensor::zeros({4, 3}, DType::i32, device());
  try {
    ops::silu_forward(x, y);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "silu_forward: y must be f32(4, 3), got f32(4, 2) " + device().str());
  }
  EXPECT_THROW(ops::silu_forward(i, i), Error);
  EXPECT_THROW(ops::silu_backward(x, x, y), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(SiluTest);

}  // namespace
}  // namespace tessera
