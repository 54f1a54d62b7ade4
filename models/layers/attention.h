#pragma once
// Multi-head self-attention with a fused QKV projection: qkv (C -> 3C, column parallel, grouped
// so each TP rank holds whole heads), scaled-dot-product attention (causal or bidirectional),
// output projection (C -> C, row parallel).

#include <string>

#include "models/layers/dropout.h"
#include "models/layers/linear.h"
#include "ops/attention_dropout.h"

namespace tessera::models {

class Attention {
 public:
  Attention(ParamStore& store, const std::string& name, int64_t dim, int n_heads, bool causal,
            Init init, Init proj_init);

  Tensor forward(const Tensor& x);  // (B, T, C) -> (B, T, C)
  // Contract: parameter grads ACCUMULATE; the returned dx is written.
  Tensor backward(const Tensor& dy);
  void drop_saved();
  // Dropout p on the attention probabilities (model.attention_dropout), drawn inside the fused
  // kernel with masks keyed by (state's seed, this layer's site, sample position, global head,
  // query, key): the same on any number of DP or TP ranks and when recomputed. Training only.
  void configure_dropout(float p, const DropoutState* state);

 private:
  int n_heads_, local_heads_, head_offset_;
  bool causal_;
  Linear qkv_, proj_;
  Tensor qkv_out_, attn_out_, lse_;  // saved: (B, T, 3C), (B, T, C), (B, H, T)
  DropoutSite probs_drop_;
  ops::AttentionDropout drop_;  // the last forward's dropout, for its backward
};

}  // namespace tessera::models
