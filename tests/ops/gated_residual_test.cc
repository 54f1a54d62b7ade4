#include "ops/gated_residual.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/threads.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class GatedResidualTest : public testing::DeviceTest {};

TEST_P(GatedResidualTest, MatchesTorch) {
  const std::vector<Shape> shapes = {{1, 1, 1},   {2, 7, 65},    {3, 65, 127},
                                     {4, 127, 7}, {2, 256, 384}, {1, 3, 600}};
  NamedTensors in;
  for (size_t c = 0; c < shapes.size(); ++c) {
    const Shape& s = shapes[c];
    in[case_key(c, "x")] = testing::normal(s, 4 * c);
    in[case_key(c, "gate")] = testing::normal({s[0], s[2]}, 4 * c + 1);
    in[case_key(c, "h")] = testing::normal(s, 4 * c + 2);
    in[case_key(c, "dy")] = testing::normal(s, 4 * c + 3);
  }
  NamedTensors ref = testing::run_reference("gated_residual", in);
  for (size_t c = 0; c < shapes.size(); ++c) {
    const Shape& s = shapes[c];
    const std::string what = shape_str(s);
    auto dev = [&](const char* name) { return to_device(in[case_key(c, name)], device()); };
    Tensor x = dev("x"), gate = dev("gate"), h = dev("h"), dy = dev("dy");
    Tensor y = Tensor::empty(s, DType::f32, device());
    ops::gated_residual_forward(x, gate, h, y);
    EXPECT_ALL_CLOSE(y, ref[case_key(c, "y")], 1e-6, "y " + what);
    // The caller passes dy through as dx; torch's dx must be exactly dy.
    EXPECT_ALL_CLOSE(dy, ref[case_key(c, "dx")], 0, "dx " + what);
    // Garbage in the outputs: backward writes both.
    Tensor dgate = to_device(testing::uniform({s[0], s[2]}, 91), device());
    Tensor dh = to_device(testing::uniform(s, 90), device());
    ops::gated_residual_backward(dy, gate, h, dgate, dh);
    EXPECT_ALL_CLOSE(dgate, ref[case_key(c, "dgate")], 1e-5, "dgate " + what);
    EXPECT_ALL_CLOSE(dh, ref[case_key(c, "dh")], 1e-6, "dh " + what);
    // In place: y may alias x, dh may alias dy.
    ops::gated_residual_forward(x, gate, h, x);
    EXPECT_ALL_CLOSE(x, ref[case_key(c, "y")], 1e-6, "y in place " + what);
    ops::gated_residual_backward(dy, gate, h, dgate, dy);
    EXPECT_ALL_CLOSE(dgate, ref[case_key(c, "dgate")], 1e-5, "dgate in place " + what);
    EXPECT_ALL_CLOSE(dy, ref[case_key(c, "dh")], 1e-6, "dh in place " + what);
  }
}

// CPU only (thread count is a CPU notion).
TEST(GatedResidualCpu, BackwardSameForAnyThreadCount) {
  const Shape s = {3, 300, 520};
  Tensor h = testing::normal(s, 1), dy = testing::normal(s, 2), gate = testing::normal({3, 520}, 3);
  auto run = [&](int threads) {
    const int saved = num_threads();
    set_num_threads(threads);
    Tensor dg = Tensor::empty({3, 520}, DType::f32), dh = Tensor::empty(s, DType::f32);
    ops::gated_residual_backward(dy, gate, h, dg, dh);
    set_num_threads(saved);
    return std::vector<Tensor>{dg, dh};
  };
  std::vector<Tensor> one = run(1), many = run(std::max(2, num_threads()));
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(std::memcmp(one[i].raw_data(), many[i].raw_data(), one[i].nbytes()), 0) << i;
  }
}

TEST_P(GatedResidualTest, BadArgumentsNameOpAndShapes) {
  Tensor x = Tensor::zeros({2, 5, 65}, DType::f32, device());
  Tensor bad = Tensor::zeros({2, 64}, DType::f32, device());
  Tensor gate = Tensor::zeros({2, 65}, DType::f32, device());
  try {
    ops::gated_residual_forward(x, bad, x, x);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "gated_residual_forward: gate must be f32(2, 65), got f32(2, 64) " + device().str());
  }
  EXPECT_THROW(ops::gated_residual_forward(x.view({10, 65}), gate, x, x), Error);
  EXPECT_THROW(ops::gated_residual_backward(x, gate, x, bad, x), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(GatedResidualTest);

}  // namespace
}  // namespace tessera
