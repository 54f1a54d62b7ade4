// Hand written: oneDNN has no optimizer primitives, and a fused single pass (read p, g, m, v,
// mask; write p, m, v) is the whole point — composing it from elementwise ops would stream the
// buffers several times.
#include "ops/cpu/adamw.h"
#include "ops/adamw_coeffs.h"

#include <cmath>

#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

// ops/CMakeLists.txt compiles this file with -fno-math-errno: with errno semantics GCC guards
// every sqrt with a branch to libm for negative inputs, the branch stops vectorisation, and the
// step ran 4-5x slower (3.5 vs 14-18 GB/s, noisy shared machine). `#pragma GCC optimize` and the
// optimize attribute do not help in GCC 12 (the builtin's errno behaviour is fixed per translation
// unit). v is never negative here, so errno could never be set anyway.
//
// Each element is independent, so the result is bitwise the same for any thread count.
template <bool kMask>
inline __attribute__((always_inline)) void adamw_body(float* __restrict p,
                                                      const float* __restrict g,
                                                      float* __restrict m, float* __restrict v,
                                                      const uint8_t* __restrict mask, int64_t n,
                                                      const AdamWCoeffs k) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float gi = k.grad_scale * g[i];
    const float mi = k.beta1 * m[i] + k.one_minus_beta1 * gi;
    const float vi = k.beta2 * v[i] + k.one_minus_beta2 * (gi * gi);
    const float keep = kMask ? (mask[i] ? k.decay_keep : 1.0f) : k.decay_keep;
    const float denom = std::sqrt(vi) * k.inv_bc2_sqrt + k.eps;
    p[i] = p[i] * keep - k.step_size * mi / denom;
    m[i] = mi;
    v[i] = vi;
  }
}

TESSERA_CPU_KERNEL(void, adamw_kernel,
                   (float* p, const float* g, float* m, float* v, int64_t n, const AdamWCoeffs k),
                   (p, g, m, v, n, k)) {
  adamw_body<false>(p, g, m, v, nullptr, n, k);
}

TESSERA_CPU_KERNEL(void, adamw_masked_kernel,
                   (float* p, const float* g, float* m, float* v, const uint8_t* mask, int64_t n,
                    const AdamWCoeffs k),
                   (p, g, m, v, mask, n, k)) {
  adamw_body<true>(p, g, m, v, mask, n, k);
}

}  // namespace

void adamw_step(float* param, const float* grad, float* m, float* v, const uint8_t* decay_mask,
                int64_t n, const AdamWConfig& cfg, int64_t step) {
  const AdamWCoeffs k = adamw_coeffs(cfg, step);
  parallel_chunks(n, kElementwiseGrain, [&](int64_t i0, int64_t i1) {
    if (decay_mask) {
      adamw_masked_kernel(param + i0, grad + i0, m + i0, v + i0, decay_mask + i0, i1 - i0, k);
    } else {
      adamw_kernel(param + i0, grad + i0, m + i0, v + i0, i1 - i0, k);
    }
  });
}

}  // namespace tessera::ops::cpu
