#include "models/vision_tower.h"

#include "absl/strings/str_cat.h"
#include "models/transformer_options.h"
#include "ops/elementwise.h"
#include "ops/tokens.h"

namespace tessera::models {
namespace {

const config::VitConfig& checked(const config::VitConfig& c) {
  TESSERA_CHECK(c.patch() > 0 && c.image_size() > 0 && c.image_size() % c.patch() == 0,
                "VitConfig: image_size ", c.image_size(), " must be a positive multiple of patch ",
                c.patch());
  TESSERA_CHECK(c.channels() > 0, "VitConfig: channels must be positive, got ", c.channels());
  return c;
}

}  // namespace

int64_t VisionTower::saved_floats(int64_t B, bool for_backward) const {
  const int64_t T = tokens(), C = dim_;
  const bool recompute = !blocks_.empty() && blocks_[0]->recomputes();
  const auto& t = config_.transformer();
  if (!for_backward) {
    // Forward only: each layer drops its activations when done, so the peak is one block's set
    // plus the residual stream going in and out of it.
    return block_stack_saved_floats(1, B, T, C, t.n_heads(), t.mlp_ratio(), false) + 2 * B * T * C;
  }
  // The blocks, the patch rows (B, P, p*p*C), and patch embedding, token, LN and pooled rows.
  return block_stack_saved_floats(t.n_layers(), B, T, C, t.n_heads(), t.mlp_ratio(), recompute) +
         B * n_patches_ * config_.patch() * config_.patch() * config_.channels() + 4 * B * T * C +
         (ln_pre_ ? B * T * C : 0);
}

VisionTower::VisionTower(ParamStore& store, const std::string& prefix, const config::VitConfig& c,
                         bool recompute)
    : config_(checked(c)),
      dim_(c.transformer().d_model()),
      n_patches_(int64_t(c.image_size() / c.patch()) * (c.image_size() / c.patch())),
      patch_(store, prefix + "patch_embed", c.patch(), c.channels(), dim_, Init::normal(0.02f)),
      cls_(store, prefix + "cls_token", 1, dim_, Init::normal(0.02f)),
      pos_(store, prefix + "pos_emb", n_patches_ + 1, dim_, Init::normal(0.02f)),
      embed_drop_(prefix + "embed.drop") {
  BlockOptions o;
  o.dim = dim_;
  o.n_heads = c.transformer().n_heads();
  o.mlp_ratio = c.transformer().mlp_ratio();
  o.causal = false;
  o.recompute = recompute;
  o.init = o.proj_init = Init::normal(0.02f);  // ViT does not scale the residual projections
  o.activation = block_activation(c.transformer());
  o.ln_eps = block_layer_norm_eps(c.transformer());
  if (c.pre_norm()) ln_pre_ = std::make_unique<LayerNorm>(store, prefix + "ln_pre", dim_, o.ln_eps);
  for (int i = 0; i < c.transformer().n_layers(); ++i) {
    blocks_.push_back(
        std::make_unique<TransformerBlock>(store, absl::StrCat(prefix, "blocks.", i), o));
  }
  ln_f_ = std::make_unique<LayerNorm>(store, prefix + "ln_f", dim_, o.ln_eps);
}

Tensor VisionTower::forward(const Tensor& images, bool for_backward) {
  const int64_t S = config_.image_size(), T = tokens();
  TESSERA_CHECK(images.ndim() == 4 && images.dtype() == DType::f32, "Vit: \"images\" must be (B, ",
                S, ", ", S, ", ", config_.channels(), ") f32 (channels last), got ",
                images.describe());
  const int64_t B = images.dim(0);
  // PatchEmbed names divisibility and channel errors; a size that merely differs from the
  // position table's is caught here.
  Tensor patches = patch_.forward(images);  // (B, N, d)
  if (!for_backward) patch_.drop_saved();
  TESSERA_CHECK(images.dim(1) == S && images.dim(2) == S, "Vit: \"images\" ", images.describe(),
                " are ", images.dim(1), "x", images.dim(2), ", the model was built for ", S, "x",
                S);
  if (batch_ != B || !(positions_.device() == images.device())) {
    Tensor pos = Tensor::empty({B, T}, DType::i32), cls = Tensor::zeros({B, 1}, DType::i32);
    for (int64_t i = 0; i < B * T; ++i) pos.data<int32_t>()[i] = int32_t(i % T);
    const bool cpu = images.device().is_cpu();
    positions_ = cpu ? pos : to_device(pos, images.device());
    cls_ids_ = cpu ? cls : to_device(cls, images.device());
    batch_ = B;
  }
  Tensor x = Tensor::empty({B, T, dim_}, DType::f32, images.device());  // (B, 1 + N, d)
  ops::copy_tokens(patches, 0, x, 1, n_patches_);
  ops::copy_tokens(cls_.forward(cls_ids_), 0, x, 0, 1);  // class token rows (B, 1, d)
  ops::add(x, pos_.forward(positions_), x);              // + positions (B, T, d)
  embed_drop_.apply(x);  // model.embedding_dropout (timm's pos_drop), before ln_pre
  if (ln_pre_) {
    x = ln_pre_->forward(x);
    if (!for_backward) ln_pre_->drop_saved();
  }
  for (auto& block : blocks_) {
    x = block->forward(x);
    if (!for_backward) block->drop_saved();
  }
  Tensor h = ln_f_->forward(x);  // (B, T, d)
  if (!for_backward) ln_f_->drop_saved();
  Tensor pooled = Tensor::empty({B, 1, dim_}, DType::f32, images.device());  // (B, 1, d)
  ops::copy_tokens(h, 0, pooled, 0, 1);
  return pooled.view({B, dim_});
}

void VisionTower::backward(const Tensor& dpooled) {
  const int64_t B = dpooled.dim(0), T = tokens();
  // Only the class token's row of ln_f's output was used: its gradient, zeros elsewhere.
  Tensor dh = Tensor::zeros({B, T, dim_}, DType::f32, dpooled.device());
  ops::copy_tokens(dpooled.view({B, 1, dim_}), 0, dh, 0, 1);
  Tensor dx = ln_f_->backward(dh);
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) dx = (*it)->backward(dx);
  if (ln_pre_) dx = ln_pre_->backward(dx);
  dx = embed_drop_.backward(dx);
  pos_.backward(dx);  // scatter-add over the batch
  Tensor dcls = Tensor::empty({B, 1, dim_}, DType::f32, dx.device());
  ops::copy_tokens(dx, 0, dcls, 0, 1);
  cls_.backward(dcls);
  Tensor dpatches = Tensor::empty({B, n_patches_, dim_}, DType::f32, dx.device());
  ops::copy_tokens(dx, 1, dpatches, 0, n_patches_);
  patch_.backward(dpatches);
}

double VisionTower::block_params() const {
  const double d = dim_;
  return config_.transformer().n_layers() *
         (4 * d * d + 2 * config_.transformer().mlp_ratio() * d * d);
}

double VisionTower::patch_params() const {
  return double(config_.patch()) * config_.patch() * config_.channels() * dim_;
}

void VisionTower::set_dropout(const DropoutRates& rates, const DropoutState* state) {
  const int n = int(blocks_.size());
  for (int i = 0; i < n; ++i) {
    blocks_[i]->configure_dropout(rates.p, drop_path_rate(rates.drop_path, i, n), state,
                                  rates.attention);
  }
  embed_drop_.configure(rates.embedding, 0.0f, state);
}

}  // namespace tessera::models
