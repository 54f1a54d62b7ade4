#pragma once
// Token-layout copies for vision transformers: cutting channels-last images into patch rows and
// back, and copying a range of token rows between (B, T, C) tensors (prepending a class token,
// pooling it). Pure data movement: each op's backward is another op of this family.

#include <cstdint>

#include "core/tensor.h"

namespace tessera::ops {

// Non-overlapping p x p patches, row-major over the patch grid, each flattened in (py, px, c)
// order (channels fastest), i.e. torch's
//   images.reshape(B, H/p, p, W/p, p, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H*W/p², p*p*C).
// H and W must be divisible by p. Backward (a gradient for the images) is unpatchify.
void patchify(const Tensor& images,  // (B, H, W, C) f32
              int64_t patch,
              const Tensor& out);  // (B, H/p * W/p, p*p*C) f32

// The inverse of patchify: images are WRITTEN from patch rows.
void unpatchify(const Tensor& patches,  // (B, H/p * W/p, p*p*C) f32
                int64_t patch,
                const Tensor& images);  // (B, H, W, C) f32

// dst[b, dst_begin + i, :] = src[b, src_begin + i, :] for i < count; other rows of dst are left
// as they are. Its backward is the same copy with src and dst exchanged (into a zeroed gradient
// where dst rows outside the range had other sources).
void copy_tokens(const Tensor& src,  // (B, Ts, C) f32
                 int64_t src_begin,
                 const Tensor& dst,  // (B, Td, C) f32
                 int64_t dst_begin, int64_t count);

}  // namespace tessera::ops
