#pragma once
// CPU launchers for ops/modulate.h: raw pointers; x is (b, t, c), shift/scale (b, c).

#include <cstdint>

namespace tessera::ops::cpu {

void modulate_forward(const float* x, const float* shift, const float* scale, float* y, int64_t b,
                      int64_t t, int64_t c);
// dx, dshift, dscale written.
void modulate_backward(const float* dy, const float* x, const float* scale, float* dx,
                       float* dshift, float* dscale, int64_t b, int64_t t, int64_t c);

}  // namespace tessera::ops::cpu
