// CUDA kernel for ops/adamw.h: one fused pass (read p, g, m, v, mask; write p, m, v), the same
// per-element arithmetic as ops/cpu/adamw.cc (sqrtf and '/' are IEEE-exact under nvcc's default
// -prec-sqrt/-prec-div). Each element is independent, so the result is deterministic. float4
// accesses when the f32 pointers are aligned (the u8 mask is read as 4 bytes per group).
#include <cmath>

#include "ops/adamw_coeffs.h"
#include "ops/cuda/adamw.cuh"
#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int kBlock = 256;

// Groups of V elements from group `begin` to `groups`.
template <int V>
__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, const uint8_t* mask,
                             int64_t begin, int64_t groups, const AdamWCoeffs k) {
  for (int64_t i = begin + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < groups;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = V * i;
    float pv[V], gv[V], mv[V], vv[V];
    load<V>(p + e, pv);
    load<V>(g + e, gv);
    load<V>(m + e, mv);
    load<V>(v + e, vv);
    for (int l = 0; l < V; ++l) {
      const float gi = k.grad_scale * gv[l];
      const float mi = k.beta1 * mv[l] + k.one_minus_beta1 * gi;
      const float vi = k.beta2 * vv[l] + k.one_minus_beta2 * (gi * gi);
      const float keep = mask ? (mask[e + l] ? k.decay_keep : 1.0f) : k.decay_keep;
      const float denom = sqrtf(vi) * k.inv_bc2_sqrt + k.eps;
      pv[l] = pv[l] * keep - k.step_size * mi / denom;
      mv[l] = mi;
      vv[l] = vi;
    }
    store<V>(p + e, pv);
    store<V>(m + e, mv);
    store<V>(v + e, vv);
  }
}

}  // namespace

void adamw_step(float* param, const float* grad, float* m, float* v, const uint8_t* decay_mask,
                int64_t n, const AdamWConfig& cfg, int64_t step, cudaStream_t stream) {
  if (n == 0) return;
  const AdamWCoeffs k = adamw_coeffs(cfg, step);
  const int64_t n4 =
      (aligned16(param) && aligned16(grad) && aligned16(m) && aligned16(v)) ? n / 4 : 0;
  if (n4) {
    adamw_kernel<4>
        <<<grid_for(n4, kBlock), kBlock, 0, stream>>>(param, grad, m, v, decay_mask, 0, n4, k);
  }
  if (4 * n4 < n) {
    adamw_kernel<1><<<grid_for(n - 4 * n4, kBlock), kBlock, 0, stream>>>(param, grad, m, v,
                                                                         decay_mask, 4 * n4, n, k);
  }
  check_launch("adamw_step");
}

}  // namespace tessera::ops::cuda
