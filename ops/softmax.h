#pragma once
// Softmax over the last dimension of an f32 tensor; leading dimensions are flattened into rows.
// (Attention has its own fused softmax; this one is for logits-shaped tensors.)

#include "core/tensor.h"

namespace tessera::ops {

// y = softmax(x) along the last dim.
void softmax_forward(const Tensor& x,   // (N..., C)
                     const Tensor& y);  // same shape as x

// Contract: no parameters; dx is WRITTEN (=): dx = y * (dy - rowsum(dy * y)). dx may alias dy.
void softmax_backward(const Tensor& dy,   // (N..., C)
                      const Tensor& y,    // same shape: forward's output
                      const Tensor& dx);  // same shape, written
}  // namespace tessera::ops
