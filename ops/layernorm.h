#pragma once
// Layer normalisation over the last dimension of f32 tensors: y = (x - mean) * rstd * w + b,
// rstd = 1 / sqrt(var + eps) with the biased variance (PyTorch's nn.LayerNorm). Leading
// dimensions of x are flattened into N rows of C.

#include "core/tensor.h"

namespace tessera::ops {

// Writes y, and the per-row mean and rstd that backward needs.
void layernorm_forward(const Tensor& x,       // (N, C) or (..., C), N rows in all
                       const Tensor& weight,  // (C)
                       const Tensor& bias,    // (C)
                       const Tensor& y,       // same shape as x
                       const Tensor& mean,    // N elements, e.g. (N) or x's leading shape
                       const Tensor& rstd,    // N elements
                       float eps = 1e-5f);

// Contract: dx is WRITTEN (=); dweight and dbias ACCUMULATE (+=). The parameter-grad reduction
// over rows is summed in fixed 64-row chunks, then over chunks in order: the result does not
// depend on the thread count.
void layernorm_backward(const Tensor& dy,       // same shape as x
                        const Tensor& x,        // (N, C) or (..., C)
                        const Tensor& weight,   // (C)
                        const Tensor& mean,     // N elements, from forward
                        const Tensor& rstd,     // N elements, from forward
                        const Tensor& dx,       // same shape as x
                        const Tensor& dweight,  // (C)
                        const Tensor& dbias);   // (C)

}  // namespace tessera::ops
