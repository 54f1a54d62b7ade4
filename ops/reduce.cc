// Adapters for ops/reduce.h: check dtype and device, then dispatch.
#include "ops/reduce.h"

#include <cmath>
#include <limits>

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/reduce.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/reduce.cuh"
#endif

namespace tessera::ops {
namespace {

// Checks x and sums it (or its squares) on its device. CUDA copies the result back (a sync).
double total(const char* op, const Tensor& x, bool squares) {
  OpCheck c(op);
  c.tensor("x", x, DType::f32);
  if (c.device().is_cpu()) {
    return squares ? cpu::sum_squares(x.data<float>(), x.numel())
                   : cpu::sum(x.data<float>(), x.numel());
  }
  double result = 0;
  TESSERA_CUDA_LAUNCH(c, result = squares
                                      ? cuda::sum_squares(x.data<float>(), x.numel(), stream_for(c))
                                      : cuda::sum(x.data<float>(), x.numel(), stream_for(c)));
  return result;
}

}  // namespace

double sum(const Tensor& x) {
  TESSERA_PROFILE("reduce");
  return total("sum", x, false);
}

double mean(const Tensor& x) {
  TESSERA_PROFILE("reduce");
  const double s = total("mean", x, false);
  if (x.numel() == 0) return std::numeric_limits<double>::quiet_NaN();
  return s / double(x.numel());
}

double sum_squares(const Tensor& x) {
  TESSERA_PROFILE("reduce");
  return total("sum_squares", x, true);
}

double l2_norm(const Tensor& x) {
  TESSERA_PROFILE("reduce");
  return std::sqrt(total("l2_norm", x, true));
}

}  // namespace tessera::ops
