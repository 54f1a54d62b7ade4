// SiLU: an own vectorised kernel like GELU's (ops/cpu/activation.cc): memory bound, one fast_exp
// and one division per element. fast_exp(-x) overflows to +inf for x < -88, giving y = -0 and
// s = 0 (the limits), not NaN; it underflows to 0 for x > 87, giving y = x and s = 1.
#include "ops/cpu/silu.h"

#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

TESSERA_CPU_KERNEL(void, silu_forward_kernel, (const float* x, float* y, int64_t n), (x, y, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0f + fast_exp(-x[i]));
}

TESSERA_CPU_KERNEL(void, silu_backward_kernel,
                   (const float* dy, const float* x, float* dx, int64_t n), (dy, x, dx, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float s = 1.0f / (1.0f + fast_exp(-v));
    dx[i] = dy[i] * (s + v * s * (1.0f - s));
  }
}

}  // namespace

void silu_forward(const float* x, float* y, int64_t n) {
  parallel_chunks(n, kElementwiseGrain,
                  [&](int64_t i0, int64_t i1) { silu_forward_kernel(x + i0, y + i0, i1 - i0); });
}

void silu_backward(const float* dy, const float* x, float* dx, int64_t n) {
  parallel_chunks(n, kElementwiseGrain, [&](int64_t i0, int64_t i1) {
    silu_backward_kernel(dy + i0, x + i0, dx + i0, i1 - i0);
  });
}

}  // namespace tessera::ops::cpu
