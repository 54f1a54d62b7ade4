#pragma once
// CUDA launchers for ops/layernorm.h: raw device pointers, n rows of c contiguous floats.

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

void layernorm_forward(const float* x, const float* weight, const float* bias, float* y,
                       float* mean, float* rstd, int64_t n, int64_t c, float eps,
                       cudaStream_t stream);
// dx written; dweight, dbias accumulated (per-64-row-chunk partials, then summed over chunks in
// order: deterministic, no atomics).
void layernorm_backward(const float* dy, const float* x, const float* weight, const float* mean,
                        const float* rstd, float* dx, float* dweight, float* dbias, int64_t n,
                        int64_t c, cudaStream_t stream);

}  // namespace tessera::ops::cuda
