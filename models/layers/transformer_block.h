#pragma once
// Pre-LN transformer block (GPT-2, ViT):
//   h = x + attn(ln1(x))
//   y = h + mlp(ln2(h))
// With recompute on, forward keeps only its input and backward runs the forward again before
// going back through it: activation memory per block drops to one (B, T, C) tensor for about
// one extra forward of compute.

#include <string>

#include "models/layers/attention.h"
#include "models/layers/layernorm.h"
#include "models/layers/mlp.h"

namespace tessera::models {

struct BlockOptions {
  int64_t dim = 0;
  int n_heads = 0;
  int mlp_ratio = 4;
  bool causal = false;
  bool recompute = false;
  Init init = Init::normal(0.02f);       // qkv and fc weights
  Init proj_init = Init::normal(0.02f);  // residual projections (attn.proj, mlp.proj)
};

class TransformerBlock {
 public:
  TransformerBlock(ParamStore& store, const std::string& name, const BlockOptions& options);

  Tensor forward(const Tensor& x);  // (B, T, C) -> (B, T, C)
  // Contract: parameter grads ACCUMULATE; the returned dx is written.
  Tensor backward(const Tensor& dy);
  bool recomputes() const { return recompute_; }

 private:
  Tensor run_forward(const Tensor& x);

  bool recompute_;
  LayerNorm ln1_;
  Attention attn_;
  LayerNorm ln2_;
  Mlp mlp_;
  Tensor x_;  // saved input (used only when recomputing)
};

}  // namespace tessera::models
