#pragma once
// CPU launchers for ops/softmax.h: `rows` rows of `cols` contiguous f32 each.

#include <cstdint>

namespace tessera::ops::cpu {

void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols);
void softmax_backward(const float* dy, const float* y, float* dx, int64_t rows, int64_t cols);

}  // namespace tessera::ops::cpu
