#pragma once
// CPU launcher for ops/dropout.h: raw pointers, rows x n elements.

#include <cstdint>

#include "ops/dropout.h"

namespace tessera::ops::cpu {

void keyed_dropout(const float* x, float* out, int64_t rows, int64_t n, float p, float path_p,
                   const DropoutKey& key);

}  // namespace tessera::ops::cpu
