#pragma once
// CPU launchers for ops/tokens.h.

#include <cstddef>
#include <cstdint>

namespace tessera::ops::cpu {

// C counts elements of `elem` bytes.
void copy_tokens(const void* src, int64_t ts, int64_t src_begin, void* dst, int64_t td,
                 int64_t dst_begin, int64_t B, int64_t count, int64_t C, size_t elem);

}  // namespace tessera::ops::cpu
