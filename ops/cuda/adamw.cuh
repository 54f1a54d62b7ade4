#pragma once
// CUDA launcher for ops/adamw.h: raw device pointers, n elements; decay_mask may be null (decay
// all). The per-step scalars are computed on the host exactly as ops/cpu/adamw.cc does.

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/adamw.h"

namespace tessera::ops::cuda {

void adamw_step(float* param, const float* grad, float* m, float* v, const uint8_t* decay_mask,
                int64_t n, const AdamWConfig& cfg, int64_t step, cudaStream_t stream);

}  // namespace tessera::ops::cuda
