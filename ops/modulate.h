#pragma once
// DiT adaLN modulation: y = x * (1 + scale) + shift, with shift and scale per sample broadcast
// over the T tokens.

#include "core/tensor.h"

namespace tessera::ops {

void modulate_forward(const Tensor& x,      // (B, T, C)
                      const Tensor& shift,  // (B, C)
                      const Tensor& scale,  // (B, C)
                      const Tensor& y);     // (B, T, C)

// Contract: dx, dshift and dscale are all WRITTEN (=): shift and scale are activations (outputs
// of the conditioning MLP), not parameters. dshift = sum_T dy, dscale = sum_T dy * x, each summed
// over T in order (deterministic for any thread count).
void modulate_backward(const Tensor& dy,       // (B, T, C)
                       const Tensor& x,        // (B, T, C)
                       const Tensor& scale,    // (B, C)
                       const Tensor& dx,       // (B, T, C)
                       const Tensor& dshift,   // (B, C)
                       const Tensor& dscale);  // (B, C)

}  // namespace tessera::ops
