#pragma once
// CUDA launcher for ops/dropout.h: raw device pointers, rows x n elements, the op's stream.

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/dropout.h"

namespace tessera::ops::cuda {

void keyed_dropout(const float* x, float* out, int64_t rows, int64_t n, float p, float path_p,
                   const DropoutKey& key, cudaStream_t stream);

}  // namespace tessera::ops::cuda
