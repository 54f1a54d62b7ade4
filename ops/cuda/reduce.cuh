#pragma once
// CUDA launchers for ops/reduce.h: raw device pointers, n elements; the double result is copied
// back to the host, so these synchronise the op's stream.

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

double sum(const float* x, int64_t n, cudaStream_t stream);
double sum_squares(const float* x, int64_t n, cudaStream_t stream);

}  // namespace tessera::ops::cuda
