#pragma once
// Elementwise ops on f32 tensors of any shape (treated as flat). Outputs may alias inputs.

#include "core/tensor.h"

namespace tessera::ops {

// out = a + b (the residual add). Backward is the identity into both inputs: callers pass dout
// on, or accumulate it with add_inplace.
void add(const Tensor& a,     // (any)
         const Tensor& b,     // same shape as a
         const Tensor& out);  // same shape as a

// dst += src (gradient accumulation).
void add_inplace(const Tensor& dst, const Tensor& src);

// out = alpha * x. Backward: dx = alpha * dout, i.e. scale again.
void scale(const Tensor& x, float alpha, const Tensor& out);

}  // namespace tessera::ops
