#include "ops/reduce.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/threads.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class ReduceTest : public testing::DeviceTest {};

// A double result sent back by ref_reduce.py as the pair (hi, lo).
double ref_value(NamedTensors& ref, int c, const std::string& name) {
  return double(ref[case_key(c, name + "_hi")].data<float>()[0]) +
         double(ref[case_key(c, name + "_lo")].data<float>()[0]);
}

void expect_close(double actual, double expected, double rtol, const std::string& what) {
  EXPECT_LE(std::abs(actual - expected), rtol * std::abs(expected))
      << what << ": got " << actual << ", expected " << expected;
}

TEST_P(ReduceTest, MatchesTorchFloat64) {
  const std::vector<Shape> shapes = {{1}, {7}, {5, 13}, {127}, {1000003}};
  NamedTensors in;
  for (size_t c = 0; c < shapes.size(); ++c) in[case_key(c, "x")] = testing::uniform(shapes[c], c);
  NamedTensors ref = testing::run_reference("reduce", in);
  for (size_t c = 0; c < shapes.size(); ++c) {
    Tensor x = to_device(in[case_key(c, "x")], device());
    const std::string what = shape_str(shapes[c]);
    // Both sides sum the same floats in double, only in different orders: the results differ by
    // rounding of the partial sums, far below 1e-12 of the result for these inputs.
    expect_close(ops::sum(x), ref_value(ref, c, "sum"), 1e-12, "sum " + what);
    expect_close(ops::mean(x), ref_value(ref, c, "mean"), 1e-12, "mean " + what);
    expect_close(ops::sum_squares(x), ref_value(ref, c, "sum_squares"), 1e-12,
                 "sum_squares " + what);
    expect_close(ops::l2_norm(x), ref_value(ref, c, "l2_norm"), 1e-12, "l2_norm " + what);
  }
}

// The chunking is fixed, so one and two threads add the same partial sums in the same order:
// the results are bitwise equal (the requirement is 1e-12 relative; equality is what we get).
TEST_P(ReduceTest, SameResultForOneAndTwoThreads) {
  Tensor x = to_device(testing::normal({1000003}, 7, 3.0f), device());
  const int threads = num_threads();
  set_num_threads(1);
  const double sum1 = ops::sum(x), sq1 = ops::sum_squares(x);
  set_num_threads(2);
  const double sum2 = ops::sum(x), sq2 = ops::sum_squares(x);
  set_num_threads(threads);
  EXPECT_EQ(sum1, sum2);
  EXPECT_EQ(sq1, sq2);
  EXPECT_LE(std::abs(sum1 - sum2), 1e-12 * std::abs(sum1));
}

TEST_P(ReduceTest, NonFiniteAndEmpty) {
  Tensor x = testing::uniform({100000}, 3);
  x.data<float>()[77777] = INFINITY;
  EXPECT_TRUE(std::isinf(ops::sum_squares(to_device(x, device()))));
  x.data<float>()[77777] = NAN;
  EXPECT_TRUE(std::isnan(ops::l2_norm(to_device(x, device()))));
  Tensor empty = Tensor::zeros({0}, DType::f32, device());
  EXPECT_EQ(ops::sum(empty), 0.0);
  EXPECT_TRUE(std::isnan(ops::mean(empty)));
}

TEST_P(ReduceTest, BadArgumentsNameOpAndShapes) {
  Tensor i = Tensor::zeros({4, 3}, DType::i32, device());
  try {
    ops::sum_squares(i);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sum_squares: x must be f32, got i32(4, 3)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ops::l2_norm(Tensor()), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(ReduceTest);

}  // namespace
}  // namespace tessera
