#pragma once
// CUDA launchers for ops/modulate.h: raw device pointers; x is (b, t, c), shift/scale (b, c).

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

void modulate_forward(const float* x, const float* shift, const float* scale, float* y, int64_t b,
                      int64_t t, int64_t c, cudaStream_t stream);
// dx, dshift, dscale written; the sums over t run in order (one thread per (sample, column)).
void modulate_backward(const float* dy, const float* x, const float* scale, float* dx,
                       float* dshift, float* dscale, int64_t b, int64_t t, int64_t c,
                       cudaStream_t stream);

}  // namespace tessera::ops::cuda
