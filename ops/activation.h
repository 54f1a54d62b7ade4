#pragma once
// Activations on f32 tensors of any shape (treated as flat).
//
// GELU, tanh approximation (PyTorch's approximate='tanh', GPT-2's):
//   y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
// SiLU (swish), which DiT applies to the conditioning vector before every adaLN projection and
// inside the timestep-embedding MLP:
//   y = x * sigmoid(x) = x / (1 + e^-x)

#include "core/tensor.h"

namespace tessera::ops {

// y may alias x.
void gelu_forward(const Tensor& x,   // (any)
                  const Tensor& y);  // same shape as x

// Contract: dx is WRITTEN (=) (an activation grad). dx may alias dy.
void gelu_backward(const Tensor& dy,   // same shape as x
                   const Tensor& x,    // (any), the forward's input
                   const Tensor& dx);  // same shape as x

// y may alias x.
void silu_forward(const Tensor& x,   // (any)
                  const Tensor& y);  // same shape as x

// Contract: dx is WRITTEN (=) (an activation grad). dx may alias dy.
// dx = dy * s * (1 + x (1 - s)),  s = sigmoid(x).
void silu_backward(const Tensor& dy,   // same shape as x
                   const Tensor& x,    // (any), the forward's input
                   const Tensor& dx);  // same shape as x

}  // namespace tessera::ops
