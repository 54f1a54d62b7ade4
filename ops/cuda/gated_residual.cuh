#pragma once
// CUDA launchers for ops/gated_residual.h: raw device pointers; x, h, y are (b, t, c), gate
// (b, c).

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

// y = x + gate * h (gate broadcast over t).
void gated_residual_forward(const float* x, const float* gate, const float* h, float* y, int64_t b,
                            int64_t t, int64_t c, cudaStream_t stream);
// dh = gate * dy; dgate = sum over t of dy * h, in order (one thread per (sample, column)).
// dh may alias dy.
void gated_residual_backward(const float* dy, const float* gate, const float* h, float* dgate,
                             float* dh, int64_t b, int64_t t, int64_t c, cudaStream_t stream);

}  // namespace tessera::ops::cuda
