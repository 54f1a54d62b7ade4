#include "ops/cpu/elementwise.h"

#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

TESSERA_CPU_KERNEL(void, add_kernel, (const float* a, const float* b, float* out, int64_t n),
                   (a, b, out, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

TESSERA_CPU_KERNEL(void, scale_kernel, (const float* x, float alpha, float* out, int64_t n),
                   (x, alpha, out, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = alpha * x[i];
}

}  // namespace

void add(const float* a, const float* b, float* out, int64_t n) {
  parallel_chunks(n, kElementwiseGrain,
                  [&](int64_t i0, int64_t i1) { add_kernel(a + i0, b + i0, out + i0, i1 - i0); });
}

void add_inplace(float* dst, const float* src, int64_t n) {
  add(dst, src, dst, n);
}

void scale(const float* x, float alpha, float* out, int64_t n) {
  parallel_chunks(n, kElementwiseGrain,
                  [&](int64_t i0, int64_t i1) { scale_kernel(x + i0, alpha, out + i0, i1 - i0); });
}

}  // namespace tessera::ops::cpu
