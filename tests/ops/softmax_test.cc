#include "ops/softmax.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class SoftmaxTest : public testing::DeviceTest {};

TEST_P(SoftmaxTest, MatchesTorch) {
  // Leading dims are flattened; (3, 5, 1000) has logits up to +-40 to test the max shift.
  const std::vector<Shape> shapes = {{1},       {1, 1},      {7, 7},       {65, 127},
                                     {127, 65}, {2, 3, 513}, {3, 5, 1000}, {4, 32000}};
  NamedTensors in;
  for (size_t c = 0; c < shapes.size(); ++c) {
    const float range = c == 6 ? 40.0f : 3.0f;
    in[case_key(c, "x")] = testing::uniform(shapes[c], 2 * c, -range, range);
    in[case_key(c, "dy")] = testing::uniform(shapes[c], 2 * c + 1);
  }
  NamedTensors ref = testing::run_reference("softmax", in);
  for (size_t c = 0; c < shapes.size(); ++c) {
    const std::string what = shape_str(shapes[c]);
    Tensor x = to_device(in[case_key(c, "x")], device());
    Tensor dy = to_device(in[case_key(c, "dy")], device());
    Tensor y = Tensor::empty(shapes[c], DType::f32, device());
    ops::softmax_forward(x, y);
    EXPECT_ALL_CLOSE(y, ref[case_key(c, "y")], 1e-5, "y " + what);
    Tensor dx = Tensor::empty(shapes[c], DType::f32, device());
    ops::softmax_backward(dy, y, dx);
    EXPECT_ALL_CLOSE(dx, ref[case_key(c, "dx")], 1e-5, "dx " + what);
    ops::softmax_backward(dy, y, dy);  // dx may alias dy
    EXPECT_ALL_CLOSE(dy, ref[case_key(c, "dx")], 1e-5, "dx aliasing dy " + what);
  }
}

TEST_P(SoftmaxTest, MaskedEntriesGetZero) {
  Tensor x = testing::uniform({3, 40}, 50);
  for (int c = 0; c < 40; c += 3) x.data<float>()[40 + c] = -INFINITY;
  Tensor y = Tensor::empty({3, 40}, DType::f32, device());
  ops::softmax_forward(to_device(x, device()), y);
  Tensor host = testing::to_cpu_f32(y);
  double row_sum = 0;
  for (int c = 0; c < 40; ++c) {
    const float v = host.data<float>()[40 + c];
    if (c % 3 == 0) {
      EXPECT_EQ(v, 0.0f) << c;
    }
    row_sum += v;
  }
  EXPECT_NEAR(row_sum, 1.0, 1e-6);
}

TEST_P(SoftmaxTest, BadArgumentsNameOpAndShapes) {
  Tensor x = Tensor::zeros({4, 3}, DType::f32, device());
  Tensor y = Tensor::zeros({4, 2}, DType::f32, device());
  Tensor i = Tensor::zeros({4, 3}, DType::i32, device());
  try {
    ops::softmax_forward(x, y);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("softmax_forward: y must be f32(4, 3), got f32(4, 2)"),
              std::string::npos)
        << e.what();
  }
  try {
    ops::softmax_backward(x, i, x);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("softmax_backward: y must be f32, got i32(4, 3)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ops::softmax_backward(x, x, y), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(SoftmaxTest);

}  // namespace
}  // namespace tessera
