#pragma once
// CUDA launchers for ops/elementwise.h: raw device pointers, n elements, the op's stream.

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

void add(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream);
void scale(const float* x, float alpha, float* out, int64_t n, cudaStream_t stream);

}  // namespace tessera::ops::cuda
