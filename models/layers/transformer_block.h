#pragma once
// Pre-LN transformer block (GPT-2, ViT):
//   h = x + drop(attn(ln1(x)))
//   y = h + drop(mlp(ln2(h)))
// drop: dropout and drop-path of the branch (models/layers/dropout.h), off unless
// configure_dropout() turned it on and the model is training.
// With recompute on, forward keeps only its input and backward runs the forward again before
// going back through it: activation memory per block drops to one (B, T, C) tensor for about
// one extra forward of compute.

#include <string>

#include "models/layers/attention.h"
#include "models/layers/dropout.h"
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
  ops::Activation activation = ops::Activation::kGeluTanh;  // the MLP's
  float ln_eps = 1e-5f;                                     // ln1's and ln2's
};

// Activation floats a stack of `n_layers` pre-LN blocks keeps for backward, for B·T tokens of
// width C: per block the LN1 input, qkv (3), attention output, the residual sum, LN2 output, the
// MLP hidden before and after GELU (2·mlp_ratio), plus lse and LayerNorm statistics; `extra`
// more (B, T, C) tensors per block for variants that save more (adaLN: 3). With recomputation
// each block keeps only its input, plus one block's full set while it is being recomputed.
int64_t block_stack_saved_floats(int64_t n_layers, int64_t B, int64_t T, int64_t C, int64_t H,
                                 int mlp_ratio, bool recompute, int extra = 0);

class TransformerBlock {
 public:
  TransformerBlock(ParamStore& store, const std::string& name, const BlockOptions& options);

  Tensor forward(const Tensor& x);  // (B, T, C) -> (B, T, C)
  // Contract: parameter grads ACCUMULATE; the returned dx is written.
  Tensor backward(const Tensor& dy);
  bool recomputes() const { return recompute_; }
  // Dropout p on both branch outputs and drop-path path_p of each branch per sample, and
  // attention_p on the attention probabilities; `state` (borrowed) is the model's.
  void configure_dropout(float p, float path_p, const DropoutState* state, float attention_p = 0);
  // Frees what backward needs (a forward-only pass through a locked tower, train/freeze.h).
  void drop_saved();

 private:
  Tensor run_forward(const Tensor& x);

  bool recompute_;
  LayerNorm ln1_;
  Attention attn_;
  LayerNorm ln2_;
  Mlp mlp_;
  DropoutSite attn_drop_, mlp_drop_;
  Tensor x_;  // saved input (used only when recomputing)
};

}  // namespace tessera::models
