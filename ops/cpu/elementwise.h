#pragma once
// CPU launchers for ops/elementwise.h: raw pointers, n elements.

#include <cstdint>

namespace tessera::ops::cpu {

void add(const float* a, const float* b, float* out, int64_t n);
void add_inplace(float* dst, const float* src, int64_t n);
void scale(const float* x, float alpha, float* out, int64_t n);

}  // namespace tessera::ops::cpu
