#pragma once
// Numeric comparison for tests. The error measure is the largest absolute difference divided by
// the largest magnitude in `expected` ("relative to the tensor's scale"): it does not blow up on
// elements near zero, and 1e-5 means five correct digits at the tensor's scale.

#include <string>

#include "core/tensor.h"
#include "gtest/gtest.h"

namespace tessera::testing {

struct Diff {
  double max_abs = 0;  // largest |actual - expected|
  double scale = 0;    // largest |expected|
  int64_t worst = -1;  // index of the largest difference
  double relative() const { return max_abs / (scale > 0 ? scale : 1.0); }
};

// Both tensors are read as float (f32, bf16 or f16; any device); shapes must match.
Diff diff(const Tensor& actual, const Tensor& expected);

::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double rtol,
                                     const std::string& what);

// A copy of t as f32 on the CPU (converting bf16/f16).
Tensor to_cpu_f32(const Tensor& t);

}  // namespace tessera::testing

#define EXPECT_ALL_CLOSE(actual, expected, rtol, what) \
  EXPECT_TRUE(::tessera::testing::all_close((actual), (expected), (rtol), (what)))
