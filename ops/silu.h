#pragma once
// SiLU (swish) on f32 tensors of any shape (treated as flat): y = x * sigmoid(x) = x / (1 + e^-x).
// DiT applies it to the conditioning vector before every adaLN projection and inside the
// timestep-embedding MLP.

#include "core/tensor.h"

namespace tessera::ops {

// y may alias x.
void silu_forward(const Tensor& x,   // (any)
                  const Tensor& y);  // same shape as x

// Contract: dx is WRITTEN (=) (an activation grad). dx may alias dy.
// dx = dy * s * (1 + x (1 - s)),  s = sigmoid(x).
void silu_backward(const Tensor& dy,   // same shape as x
                   const Tensor& x,    // (any), the forward's input
                   const Tensor& dx);  // same shape as x

}  // namespace tessera::ops
