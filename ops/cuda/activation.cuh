#pragma once
// CUDA launchers for ops/activation.h: raw device pointers, n elements, the op's stream.

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

void gelu_forward(const float* x, float* y, int64_t n, cudaStream_t stream);
// dx written.
void gelu_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t stream);

void gelu_erf_forward(const float* x, float* y, int64_t n, cudaStream_t stream);
// dx written.
void gelu_erf_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t stream);

void quick_gelu_forward(const float* x, float* y, int64_t n, cudaStream_t stream);
// dx written.
void quick_gelu_backward(const float* dy, const float* x, float* dx, int64_t n,
                         cudaStream_t stream);

void silu_forward(const float* x, float* y, int64_t n, cudaStream_t stream);
// dx written.
void silu_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t stream);

}  // namespace tessera::ops::cuda
