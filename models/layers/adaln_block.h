#pragma once
// DiT's adaLN-Zero transformer block and final layer (Peebles & Xie, 2023, section 3.2).
//
// AdaLnBlock, with c the SiLU'd conditioning vector (B, d) (the model applies the SiLU once and
// hands the result to every block: each DiT block would apply the same SiLU to the same c):
//   shift1, scale1, gate1, shift2, scale2, gate2 = Linear(d -> 6d)(c)        (zero-initialised)
//   h = x + gate1 * attn(modulate(LN(x), shift1, scale1))
//   y = h + gate2 * mlp(modulate(LN(h), shift2, scale2))
// LN has no affine parameters (eps 1e-6); attention is bidirectional; the MLP is GELU (tanh),
// as DiT's. With the zero init both gates are 0, so the block is exactly the identity at init.
// With recompute on, forward keeps only x and c, and backward runs the forward again first.
//
// AdaLnFinal: shift, scale = Linear(d -> 2d)(c); y = Linear(d -> out)(modulate(LN(x), shift,
// scale)); both linears zero-initialised, so the model predicts 0 at init.

#include <string>

#include "models/layers/attention.h"
#include "models/layers/layernorm_no_affine.h"
#include "models/layers/mlp.h"
#include "models/layers/modulation.h"

namespace tessera::models {

// Gradients of a conditioned layer: both WRITTEN.
struct AdaLnGrads {
  Tensor dx;  // (B, T, d)
  Tensor dc;  // (B, d), w.r.t. the SiLU'd conditioning vector
};

struct AdaLnBlockOptions {
  int64_t dim = 0;
  int n_heads = 0;
  int mlp_ratio = 4;
  bool recompute = false;
  ops::Activation activation = ops::Activation::kGeluTanh;  // the MLP's (DiT's is tanh GELU)
  float ln_eps = 1e-6f;                                     // norm1's and norm2's (DiT's)
};

class AdaLnBlock {
 public:
  // Attention and MLP weights are Xavier-uniform initialised (DiT's initialize_weights), biases
  // zero; the adaLN projection is zero.
  AdaLnBlock(ParamStore& store, const std::string& name, const AdaLnBlockOptions& options);

  Tensor forward(const Tensor& x, const Tensor& c);  // x (B, T, d), c (B, d) -> (B, T, d)
  // Contract: parameter grads ACCUMULATE; dx and dc are written.
  AdaLnGrads backward(const Tensor& dy);  // dy (B, T, d)

  bool recomputes() const { return recompute_; }

 private:
  Tensor run_forward(const Tensor& x, const Tensor& c);
  void drop_saved();

  bool recompute_;
  Modulation ada_;
  LayerNormNoAffine norm1_;
  Attention attn_;
  LayerNormNoAffine norm2_;
  Mlp mlp_;
  Tensor mod_;              // (6, B, d) shift1, scale1, gate1, shift2, scale2, gate2
  Tensor n1_, a_, n2_, f_;  // saved: LN1 output, attn output, LN2 output, MLP output (B, T, d)
  Tensor x_, c_;            // saved inputs (only when recomputing)
};

class AdaLnFinal {
 public:
  AdaLnFinal(ParamStore& store, const std::string& name, int64_t dim, int64_t out,
             float ln_eps = 1e-6f);

  Tensor forward(const Tensor& x, const Tensor& c);  // x (B, T, d), c (B, d) -> (B, T, out)
  // Contract: parameter grads ACCUMULATE; dx and dc are written.
  AdaLnGrads backward(const Tensor& dy);  // dy (B, T, out)

 private:
  Modulation ada_;
  LayerNormNoAffine norm_;
  Linear linear_;
  Tensor mod_;  // (2, B, d) shift, scale
  Tensor n_;    // saved LN output (B, T, d)
};

}  // namespace tessera::models
