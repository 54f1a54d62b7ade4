#pragma once
// The ViT encoder shared by Vit (with a classification head) and Clip (its image tower):
// patch embedding, a learnable class token prepended, learned position embeddings, pre-LN
// bidirectional transformer blocks, final LayerNorm, pooled at the class token.
//
// Parameters (after `prefix`, e.g. "image."): patch_embed.proj.{weight,bias} (see
// layers/patch_embed.h for the weight layout), cls_token.weight (1, d), pos_emb.weight
// (1 + n_patches, d; row 0 is the class token's), ln_pre.{weight,bias} (only with pre_norm: a
// LayerNorm before the blocks, as CLIP's), blocks.N.*, ln_f.{weight,bias}.
// Init as timm's ViT but with plain normal instead of truncated normal (ParamStore has no
// truncated normal; at std 0.02 the two differ only beyond 2 std): class token, positions and
// every Linear weight normal(0.02), biases zero, LayerNorms (1, 0).

#include <memory>
#include <string>
#include <vector>

#include "models/layers/embedding.h"
#include "models/layers/layernorm.h"
#include "models/layers/patch_embed.h"
#include "models/layers/transformer_block.h"
#include "proto/config.pb.h"

namespace tessera::models {

class VisionTower {
 public:
  VisionTower(ParamStore& store, const std::string& prefix, const config::VitConfig& config,
              bool recompute);

  // images (B, S, S, C) f32 with S = config.image_size -> pooled (B, d): the class token's row
  // after the final LayerNorm. Throws tessera::Error naming the images' shape when it is wrong.
  // for_backward false (a locked tower, train/freeze.h): every layer drops what its backward
  // would need as soon as it is done, so at most one layer's activations live at a time and
  // backward() must not follow.
  Tensor forward(const Tensor& images, bool for_backward = true);
  // Contract: parameter grads ACCUMULATE; images take no gradient.
  void backward(const Tensor& dpooled);  // (B, d)

  // Dropout rates.p and drop-path up to rates.drop_path (linear over the blocks) on every
  // block's branches, rates.attention on its attention probabilities, and rates.embedding on the
  // summed embeddings (before the blocks), keyed by `state` (models/layers/dropout.h; borrowed).
  void set_dropout(const DropoutRates& rates, const DropoutState* state);

  int64_t dim() const { return dim_; }
  int64_t n_patches() const { return n_patches_; }
  int64_t tokens() const { return n_patches_ + 1; }  // T: patches + class token
  // Activation floats kept for backward for a batch of B images.
  // for_backward false: a locked tower's forward, whose peak is one block's activations.
  int64_t saved_floats(int64_t B, bool for_backward = true) const;
  // Weights of the matmuls each token passes through (blocks and patch embedding), for FLOPs.
  double block_params() const;
  double patch_params() const;

 private:
  config::VitConfig config_;
  int64_t dim_, n_patches_;
  PatchEmbed patch_;
  Embedding cls_, pos_;
  std::vector<std::unique_ptr<TransformerBlock>> blocks_;
  DropoutSite embed_drop_;
  std::unique_ptr<LayerNorm> ln_pre_;  // config.pre_norm only
  std::unique_ptr<LayerNorm> ln_f_;
  Tensor positions_, cls_ids_;  // (B, T) and (B, 1) i32, rebuilt when B or the device change
  int64_t batch_ = 0;
};

}  // namespace tessera::models
