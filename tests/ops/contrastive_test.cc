#include "ops/contrastive.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class ContrastiveTest : public testing::DeviceTest {};

TEST_P(ContrastiveTest, L2NormalizeMatchesTorch) {
  const std::vector<Shape> shapes = {{1, 1}, {3, 5}, {17, 64}, {300, 33}};
  NamedTensors in;
  for (size_t c = 0; c < shapes.size(); ++c) {
    in[case_key(c, "x")] = testing::normal(shapes[c], 2 * c, 3.0f);
    in[case_key(c, "dy")] = testing::normal(shapes[c], 2 * c + 1);
  }
  // A zero row: its norm is clamped at eps (torch's normalize gives dy / eps there).
  in[case_key(1, "x")].data<float>()[5] = in[case_key(1, "x")].data<float>()[6] = 0;
  for (int k = 7; k < 10; ++k) in[case_key(1, "x")].data<float>()[k] = 0;
  NamedTensors ref = testing::run_reference("contrastive", in);
  for (size_t c = 0; c < shapes.size(); ++c) {
    const std::string what = shape_str(shapes[c]);
    Tensor x = to_device(in[case_key(c, "x")], device());
    Tensor dy = to_device(in[case_key(c, "dy")], device());
    Tensor y = Tensor::empty(shapes[c], DType::f32, device());
    Tensor norm = Tensor::empty({shapes[c][0]}, DType::f32, device());
    ops::l2_normalize_forward(x, y, norm);
    EXPECT_ALL_CLOSE(y, ref[case_key(c, "y")], 1e-6, "y " + what);
    Tensor dx = Tensor::empty(shapes[c], DType::f32, device());
    ops::l2_normalize_backward(dy, y, norm, dx);
    EXPECT_ALL_CLOSE(dx, ref[case_key(c, "dx")], 1e-5, "dx " + what);
    ops::l2_normalize_backward(dy, y, norm, dy);  // in place
    EXPECT_ALL_CLOSE(dy, ref[case_key(c, "dx")], 1e-5, "dx in place " + what);
  }
}

struct PairCase {
  int64_t bi, bt, offset;
  float bias;
};

TEST_P(ContrastiveTest, SigmoidPairLossMatchesTorch) {
  const std::vector<PairCase> cases = {{1, 1, 0, 0.0f},
                                       {4, 4, 0, -10.0f},
                                       {3, 12, 6, -2.5f},
                                       {64, 64, 0, 1.0f},
                                       {40, 120, 80, -7.0f}};
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < cases.size(); ++c) {
    in[case_key(c, "logits")] = testing::normal({cases[c].bi, cases[c].bt}, 10 + c, 8.0f);
    attrs[case_key(c, "offset")] = std::to_string(cases[c].offset);
    attrs[case_key(c, "bias")] = std::to_string(cases[c].bias);
    attrs[case_key(c, "dloss")] = "0.75";
  }
  NamedTensors ref = testing::run_reference("contrastive", in, attrs);
  for (size_t c = 0; c < cases.size(); ++c) {
    const PairCase& k = cases[c];
    const std::string what = std::to_string(k.bi) + "x" + std::to_string(k.bt);
    Tensor logits = to_device(in[case_key(c, "logits")], device());
    Tensor loss = Tensor::empty({1}, DType::f32, device());
    ops::sigmoid_pair_loss_forward(logits, k.bias, k.offset, loss);
    EXPECT_ALL_CLOSE(loss, ref[case_key(c, "loss")], 1e-6, "loss " + what);
    Tensor dlogits = Tensor::empty(logits.shape(), DType::f32, device());
    ops::sigmoid_pair_loss_backward(logits, k.bias, k.offset, 0.75f, dlogits);
    EXPECT_ALL_CLOSE(dlogits, ref[case_key(c, "dlogits")], 1e-6, "dlogits " + what);
  }
}

TEST_P(ContrastiveTest, BadArgumentsNameOpAndShapes) {
  Tensor logits = Tensor::zeros({4, 6}, DType::f32, device());
  Tensor loss = Tensor::zeros({1}, DType::f32, device());
  try {
    ops::sigmoid_pair_loss_forward(logits, 0.0f, 3, loss);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("sigmoid_pair_loss_forward: the positive pairs (offset 3)"),
        std::string::npos)
        << e.what();
  }
  Tensor x = Tensor::zeros({4, 6}, DType::f32, device());
  Tensor norm = Tensor::zeros({3}, DType::f32, device());
  EXPECT_THROW(ops::l2_normalize_forward(x, x, norm), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(ContrastiveTest);

}  // namespace
}  // namespace tessera
