#pragma once
// CPU launchers for ops/tokens.h.

#include <cstdint>

namespace tessera::ops::cpu {

void copy_tokens(const float* src, int64_t ts, int64_t src_begin, float* dst, int64_t td,
                 int64_t dst_begin, int64_t B, int64_t count, int64_t C);

}  // namespace tessera::ops::cpu
