#pragma once
// Activations on f32 tensors of any shape (treated as flat).
//
// GELU, tanh approximation (PyTorch's approximate='tanh', GPT-2's):
//   y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
// GELU, exact (erf) form (PyTorch's approximate='none', Hugging Face's "gelu", BERT's and ViT's):
//   y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
// QuickGELU (OpenAI CLIP's; Hugging Face's "quick_gelu"):
//   y = x * sigmoid(1.702 x)
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
void gelu_erf_forward(const Tensor& x,   // (any)
                      const Tensor& y);  // same shape as x

// Contract: dx is WRITTEN (=) (an activation grad). dx may alias dy.
// dx = dy * (Phi(x) + x phi(x)),  phi the standard normal density.
void gelu_erf_backward(const Tensor& dy,   // same shape as x
                       const Tensor& x,    // (any), the forward's input
                       const Tensor& dx);  // same shape as x

// y may alias x.
void quick_gelu_forward(const Tensor& x,   // (any)
                        const Tensor& y);  // same shape as x

// Contract: dx is WRITTEN (=) (an activation grad). dx may alias dy.
// dx = dy * s * (1 + 1.702 x (1 - s)),  s = sigmoid(1.702 x).
void quick_gelu_backward(const Tensor& dy,   // same shape as x
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

// The transformer MLP's nonlinearity, chosen by config (TransformerConfig.activation).
enum class Activation { kGeluTanh, kGeluErf, kQuickGelu };

// The forward / backward of activation `a`, with the contracts above.
void activation_forward(Activation a, const Tensor& x, const Tensor& y);
void activation_backward(Activation a, const Tensor& dy, const Tensor& x, const Tensor& dx);

}  // namespace tessera::ops
