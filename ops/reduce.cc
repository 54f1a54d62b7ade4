// Adapters for ops/reduce.h: check dtype and device, then dispatch.
#include "ops/reduce.h"

#include <cmath>
#include <limits>

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/reduce.h"

namespace tessera::ops {
namespace {

// Checks x and returns its data on the CPU; other devices have no kernel yet.
const float* checked(const char* op, const Tensor& x) {
  OpCheck c(op);
  c.tensor("x", x, DType::f32);
  if (!c.device().is_cpu()) c.no_kernel(c.device());
  return x.data<float>();
}

}  // namespace

double sum(const Tensor& x) {
  TESSERA_PROFILE("reduce");
  return cpu::sum(checked("sum", x), x.numel());
}

double mean(const Tensor& x) {
  TESSERA_PROFILE("reduce");
  const float* data = checked("mean", x);
  if (x.numel() == 0) return std::numeric_limits<double>::quiet_NaN();
  return cpu::sum(data, x.numel()) / double(x.numel());
}

double sum_squares(const Tensor& x) {
  TESSERA_PROFILE("reduce");
  return cpu::sum_squares(checked("sum_squares", x), x.numel());
}

double l2_norm(const Tensor& x) {
  TESSERA_PROFILE("reduce");
  return std::sqrt(cpu::sum_squares(checked("l2_norm", x), x.numel()));
}

}  // namespace tessera::ops
