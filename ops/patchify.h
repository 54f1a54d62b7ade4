#pragma once
// Cuts channels-last images into non-overlapping p x p patches and back. Patch tokens are in
// row-major patch order (token i * W/p + j is the patch at patch row i, column j), and a token's
// p*p*C values in (py, px, c) order: the layout of a ViT/DiT patch embedding (a stride-p conv
// written as a Linear) and of DiT's unpatchify.
//
// The two are inverse permutations, so each is the other's backward: the gradient of patchify is
// unpatchify of the gradient, and vice versa. Both write their output.

#include <cstdint>

#include "core/tensor.h"

namespace tessera::ops {

void patchify(const Tensor& images,   // (B, H, W, C), H and W divisible by p
              const Tensor& patches,  // (B, H/p * W/p, p*p*C)
              int64_t p);

void unpatchify(const Tensor& patches,  // (B, H/p * W/p, p*p*C)
                const Tensor& images,   // (B, H, W, C)
                int64_t p);

}  // namespace tessera::ops
