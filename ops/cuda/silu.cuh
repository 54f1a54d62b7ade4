#pragma once
// CUDA launchers for ops/silu.h: raw device pointers, n elements.

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

void silu_forward(const float* x, float* y, int64_t n, cudaStream_t stream);
// dx may alias dy.
void silu_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t stream);

}  // namespace tessera::ops::cuda
