#pragma once
// CUDA launchers for ops/softmax.h: `rows` rows of `cols` contiguous f32 each, the op's stream.

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols, cudaStream_t stream);
// dx written.
void softmax_backward(const float* dy, const float* y, float* dx, int64_t rows, int64_t cols,
                      cudaStream_t stream);

}  // namespace tessera::ops::cuda
