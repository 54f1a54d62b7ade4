#pragma once
// CPU launchers for ops/silu.h: raw pointers, n elements.

#include <cstdint>

namespace tessera::ops::cpu {

void silu_forward(const float* x, float* y, int64_t n);
// dx written.
void silu_backward(const float* dy, const float* x, float* dx, int64_t n);

}  // namespace tessera::ops::cpu
