#include "models/text_tower.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "models/transformer_options.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"

namespace tessera::models {

int64_t TextTower::saved_floats(int64_t B) const {
  const int64_t T = config_.context(), C = dim_;
  const bool recompute = !blocks_.empty() && blocks_[0]->recomputes();
  return block_stack_saved_floats(config_.transformer().n_layers(), B, T, C,
                                  config_.transformer().n_heads(),
                                  config_.transformer().mlp_ratio(), recompute) +
         4 * B * T * C;
}

TextTower::TextTower(ParamStore& store, const std::string& prefix, const config::TextTowerConfig& c,
                     bool recompute)
    : config_(c),
      dim_(c.transformer().d_model()),
      tok_(store, prefix + "tok_emb", c.vocab_size(), dim_, Init::normal(0.02f)),
      pos_(store, prefix + "pos_emb", c.context(), dim_, Init::normal(0.01f)),
      embed_drop_(prefix + "embed.drop") {
  BlockOptions o;
  o.dim = dim_;
  o.n_heads = c.transformer().n_heads();
  o.mlp_ratio = c.transformer().mlp_ratio();
  o.causal = true;
  o.recompute = recompute;
  o.init = Init::normal(0.02f);
  o.proj_init = Init::normal(0.02f / std::sqrt(2.0f * float(c.transformer().n_layers())));
  o.activation = block_activation(c.transformer());
  o.ln_eps = block_layer_norm_eps(c.transformer());
  for (int i = 0; i < c.transformer().n_layers(); ++i) {
    blocks_.push_back(
        std::make_unique<TransformerBlock>(store, absl::StrCat(prefix, "blocks.", i), o));
  }
  ln_f_ = std::make_unique<LayerNorm>(store, prefix + "ln_f", dim_, o.ln_eps);
}

Tensor TextTower::forward(const Tensor& text, const Tensor& eot) {
  TESSERA_CHECK(text.ndim() == 2 && text.dtype() == DType::i32,
                "Clip: \"text\" must be (B, L) i32, got ", text.describe());
  const int64_t B = text.dim(0), L = text.dim(1);
  TESSERA_CHECK(L >= 1 && L <= config_.context(), "Clip: \"text\" ", text.describe(),
                " has length ", L, ", the text context is ", config_.context());
  TESSERA_CHECK(eot.ndim() == 1 && eot.dtype() == DType::i32 && eot.dim(0) == B,
                "Clip: \"text_eot\" must be (", B, ") i32 like the text's batch, got ",
                eot.describe());
  const Device device = text.device();
  const bool cpu = device.is_cpu();
  // The pooled rows are checked here: an index past L would silently pool another sample's row.
  Tensor eot_host = eot.device().is_cpu() ? eot : to_device(eot, Device::cpu());
  Tensor ids = Tensor::empty({B}, DType::i32);
  for (int64_t b = 0; b < B; ++b) {
    const int32_t e = eot_host.data<int32_t>()[b];
    TESSERA_CHECK(e >= 0 && e < L, "Clip: \"text_eot\"[", b, "] = ", e,
                  " is outside the text length [0, ", L, ")");
    ids.data<int32_t>()[b] = int32_t(b * L + e);
  }
  pool_ids_ = cpu ? ids : to_device(ids, device);
  if (batch_ != B || length_ != L || !(positions_.device() == device)) {
    Tensor pos = Tensor::empty({B, L}, DType::i32);
    for (int64_t i = 0; i < B * L; ++i) pos.data<int32_t>()[i] = int32_t(i % L);
    positions_ = cpu ? pos : to_device(pos, device);
    batch_ = B;
    length_ = L;
  }
  Tensor x = tok_.forward(text);             // (B, L, d)
  ops::add(x, pos_.forward(positions_), x);  // + positions (B, L, d)
  embed_drop_.apply(x);                      // model.embedding_dropout
  for (auto& block : blocks_) x = block->forward(x);
  Tensor h = ln_f_->forward(x);  // (B, L, d)
  Tensor pooled = Tensor::empty({B, dim_}, DType::f32, device);
  ops::embedding_forward(pool_ids_, h.view({B * L, dim_}), pooled);  // gather row (b, eot[b])
  return pooled;
}

void TextTower::backward(const Tensor& dpooled) {
  const int64_t B = batch_, L = length_;
  // Scatter the pooled rows' gradient back into zeros (each row receives at most one).
  Tensor dh = Tensor::zeros({B, L, dim_}, DType::f32, dpooled.device());
  ops::embedding_backward(dpooled, pool_ids_, dh.view({B * L, dim_}));
  Tensor dx = ln_f_->backward(dh);
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) dx = (*it)->backward(dx);
  dx = embed_drop_.backward(dx);
  pos_.backward(dx);
  tok_.backward(dx);
}

double TextTower::block_params() const {
  const double d = dim_;
  return config_.transformer().n_layers() *
         (4 * d * d + 2 * config_.transformer().mlp_ratio() * d * d);
}

void TextTower::set_dropout(const DropoutRates& rates, const DropoutState* state) {
  const int n = int(blocks_.size());
  for (int i = 0; i < n; ++i) {
    blocks_[i]->configure_dropout(rates.p, drop_path_rate(rates.drop_path, i, n), state,
                                  rates.attention);
  }
  embed_drop_.configure(rates.embedding, 0.0f, state);
}

}  // namespace tessera::models
