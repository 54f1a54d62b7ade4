#pragma once
// CPU launchers for ops/layernorm.h: raw pointers, n rows of c contiguous floats.

#include <cstdint>

namespace tessera::ops::cpu {

void layernorm_forward(const float* x, const float* weight, const float* bias, float* y,
                       float* mean, float* rstd, int64_t n, int64_t c, float eps);
// dx written; dweight, dbias accumulated.
void layernorm_backward(const float* dy, const float* x, const float* weight, const float* mean,
                        const float* rstd, float* dx, float* dweight, float* dbias, int64_t n,
                        int64_t c);

}  // namespace tessera::ops::cpu
