#pragma once
// CPU launcher for ops/adamw.h: raw pointers, n elements; decay_mask may be null (decay all).

#include <cstdint>

#include "ops/adamw.h"

namespace tessera::ops::cpu {

void adamw_step(float* param, const float* grad, float* m, float* v, const uint8_t* decay_mask,
                int64_t n, const AdamWConfig& cfg, int64_t step);

}  // namespace tessera::ops::cpu
