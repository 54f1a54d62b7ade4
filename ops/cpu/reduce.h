#pragma once
// CPU launchers for ops/reduce.h: raw pointers, n elements, double results that do not depend
// on the thread count.

#include <cstdint>

namespace tessera::ops::cpu {

double sum(const float* x, int64_t n);
double sum_squares(const float* x, int64_t n);

}  // namespace tessera::ops::cpu
