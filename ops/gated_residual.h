#pragma once
// DiT's gated residual (adaLN-Zero): y = x + gate * h, with gate per sample and channel,
// broadcast over the T tokens.

#include "core/tensor.h"

namespace tessera::ops {

// y may alias x.
void gated_residual_forward(const Tensor& x,     // (B, T, C)
                            const Tensor& gate,  // (B, C)
                            const Tensor& h,     // (B, T, C)
                            const Tensor& y);    // (B, T, C)

// Contract: dgate and dh are WRITTEN (=): gate and h are activations. dx = dy is the caller's
// (the residual passes dy through unchanged). dgate = sum_T dy * h, summed over T in order
// (deterministic for any thread count); dh = gate * dy. dh may alias dy.
void gated_residual_backward(const Tensor& dy,     // (B, T, C)
                             const Tensor& gate,   // (B, C)
                             const Tensor& h,      // (B, T, C)
                             const Tensor& dgate,  // (B, C)
                             const Tensor& dh);    // (B, T, C)

}  // namespace tessera::ops
