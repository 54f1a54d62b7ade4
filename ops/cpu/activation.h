#pragma once
// CPU launchers for ops/activation.h: raw pointers, n elements.

#include <cstdint>

namespace tessera::ops::cpu {

void gelu_forward(const float* x, float* y, int64_t n);
// dx written.
void gelu_backward(const float* dy, const float* x, float* dx, int64_t n);

void gelu_erf_forward(const float* x, float* y, int64_t n);
// dx written.
void gelu_erf_backward(const float* dy, const float* x, float* dx, int64_t n);

void quick_gelu_forward(const float* x, float* y, int64_t n);
// dx written.
void quick_gelu_backward(const float* dy, const float* x, float* dx, int64_t n);

void silu_forward(const float* x, float* y, int64_t n);
// dx written.
void silu_backward(const float* dy, const float* x, float* dx, int64_t n);

}  // namespace tessera::ops::cpu
