#pragma once
// Deterministic random inputs for op tests (Philox, seed fixed per test run).

#include <cstdint>
#include <string>

#include "core/random.h"
#include "core/tensor.h"

namespace tessera::testing {

inline Tensor uniform(const Shape& shape, uint64_t stream, float low = -1.0f, float high = 1.0f) {
  Tensor t = Tensor::empty(shape, DType::f32);
  fill_uniform(t, /*seed=*/20261126, stream, low, high);
  return t;
}

inline Tensor normal(const Shape& shape, uint64_t stream, float std = 1.0f) {
  Tensor t = Tensor::empty(shape, DType::f32);
  fill_normal(t, /*seed=*/20261126, stream, 0.0f, std);
  return t;
}

// "case3.x"
inline std::string case_key(int c, const std::string& name) {
  return "case" + std::to_string(c) + "." + name;
}

}  // namespace tessera::testing
