#pragma once
// CPU launchers for ops/gated_residual.h: raw pointers; x, h, y are (b, t, c), gate (b, c).

#include <cstdint>

namespace tessera::ops::cpu {

void gated_residual_forward(const float* x, const float* gate, const float* h, float* y, int64_t b,
                            int64_t t, int64_t c);
// dgate, dh written.
void gated_residual_backward(const float* dy, const float* gate, const float* h, float* dgate,
                             float* dh, int64_t b, int64_t t, int64_t c);

}  // namespace tessera::ops::cpu
