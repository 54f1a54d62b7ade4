#pragma once
// Token-layout copies for vision transformers: copying a range of token rows between (B, T, C)
// tensors (prepending a class token, pooling it). Pure data movement: the backward is the same
// copy the other way. (Cutting images into patch rows is ops/patchify.h.)

#include <cstdint>

#include "core/tensor.h"

namespace tessera::ops {

// dst[b, dst_begin + i, :] = src[b, src_begin + i, :] for i < count; other rows of dst are left
// as they are. Its backward is the same copy with src and dst exchanged (into a zeroed gradient
// where dst rows outside the range had other sources). Any dtype (bytes are moved), the same for
// both. With C = 1 it is a column-block copy between (B, Ts) and (B, Td) matrices, which is how
// GPT's vocabulary slices use it (models/gpt.cc).
void copy_tokens(const Tensor& src,  // (B, Ts, C)
                 int64_t src_begin,
                 const Tensor& dst,  // (B, Td, C), src's dtype
                 int64_t dst_begin, int64_t count);

}  // namespace tessera::ops
