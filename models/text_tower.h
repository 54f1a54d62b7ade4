#pragma once
// CLIP's text encoder: token + learned position embeddings, pre-LN CAUSAL transformer blocks,
// final LayerNorm, pooled at each sample's end-of-text position.
//
// Parameters (after `prefix`, e.g. "text."): tok_emb.weight (V, d), pos_emb.weight (context, d),
// blocks.N.*, ln_f.{weight,bias}. Init as CLIP's text transformer where ParamStore can express
// it: token embedding normal(0.02), positions normal(0.01); block weights normal(0.02) with the
// residual projections scaled by 1/sqrt(2 L) (GPT-2, as Gpt), biases zero, LayerNorms (1, 0).

#include <memory>
#include <string>
#include <vector>

#include "models/layers/embedding.h"
#include "models/layers/layernorm.h"
#include "models/layers/transformer_block.h"
#include "proto/config.pb.h"

namespace tessera::models {

class TextTower {
 public:
  TextTower(ParamStore& store, const std::string& prefix, const config::TextTowerConfig& config,
            bool recompute);

  // text (B, L) i32 with L <= context; eot (B) i32, each in [0, L): the row each sample is
  // pooled at. Returns pooled (B, d): ln_f's output at (b, eot[b]).
  Tensor forward(const Tensor& text, const Tensor& eot);
  // Contract: parameter grads ACCUMULATE; tokens take no gradient.
  void backward(const Tensor& dpooled);  // (B, d)

  // Dropout rates.p and drop-path up to rates.drop_path (linear over the blocks) on every
  // block's branches, rates.attention on its attention probabilities, and rates.embedding on the
  // summed embeddings (before the blocks), keyed by `state` (models/layers/dropout.h; borrowed).
  void set_dropout(const DropoutRates& rates, const DropoutState* state);

  int64_t dim() const { return dim_; }
  double block_params() const;  // matmul weights per token, for FLOPs
  // Activation floats kept for backward for a batch of B texts of the full context.
  int64_t saved_floats(int64_t B) const;

 private:
  config::TextTowerConfig config_;
  int64_t dim_;
  Embedding tok_, pos_;
  std::vector<std::unique_ptr<TransformerBlock>> blocks_;
  DropoutSite embed_drop_;
  std::unique_ptr<LayerNorm> ln_f_;
  Tensor positions_;  // (B, L) i32
  Tensor pool_ids_;   // (B) i32: b * L + eot[b], rows of the flattened (B*L, d) output
  int64_t batch_ = 0, length_ = 0;
};

}  // namespace tessera::models
