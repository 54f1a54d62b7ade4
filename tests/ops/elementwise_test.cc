#include "ops/elementwise.h"

#include <gtest/gtest.h>

#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class ElementwiseTest : public testing::DeviceTest {};

TEST_P(ElementwiseTest, MatchesTorch) {
  const std::vector<Shape> shapes = {{1}, {7}, {65, 3}, {127, 129}, {3, 1 << 16}};
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < shapes.size(); ++c) {
    in[case_key(c, "a")] = testing::uniform(shapes[c], 2 * c);
    in[case_key(c, "b")] = testing::uniform(shapes[c], 2 * c + 1);
    attrs[case_key(c, "alpha")] = "0.37";
  }
  NamedTensors ref = testing::run_reference("elementwise", in, attrs);
  for (size_t c = 0; c < shapes.size(); ++c) {
    Tensor a = to_device(in[case_key(c, "a")], device());
    Tensor b = to_device(in[case_key(c, "b")], device());
    Tensor out = Tensor::empty(shapes[c], DType::f32, device());
    ops::add(a, b, out);
    EXPECT_ALL_CLOSE(out, ref[case_key(c, "sum")], 1e-6, "add " + shape_str(shapes[c]));
    ops::scale(a, 0.37f, out);
    EXPECT_ALL_CLOSE(out, ref[case_key(c, "scaled")], 1e-6, "scale " + shape_str(shapes[c]));
    ops::add_inplace(out, b);  // out = 0.37 a + b
    ops::scale(out, 1.0f, out);
    Tensor expect = to_device(ref[case_key(c, "scaled")], device());
    ops::add_inplace(expect, b);
    EXPECT_ALL_CLOSE(out, expect, 1e-6, "add_inplace " + shape_str(shapes[c]));
  }
}

TEST_P(ElementwiseTest, BadArgumentsNameOpAndShapes) {
  Tensor a = Tensor::zeros({4, 3}, DType::f32, device());
  Tensor b = Tensor::zeros({4, 2}, DType::f32, device());
  Tensor i = Tensor::zeros({4, 3}, DType::i32, device());
  try {
    ops::add(a, b, a);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add: b must be f32(4, 3), got f32(4, 2)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ops::scale(i, 2.0f, i), Error);
  EXPECT_THROW(ops::add_inplace(a, Tensor()), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(ElementwiseTest);

}  // namespace
}  // namespace tessera
