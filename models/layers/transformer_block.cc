#include "models/layers/transformer_block.h"

#include "ops/elementwise.h"

namespace tessera::models {

int64_t block_stack_saved_floats(int64_t n_layers, int64_t B, int64_t T, int64_t C, int64_t H,
                                 int mlp_ratio, bool recompute, int extra) {
  const int64_t btc = B * T * C;
  const int64_t per_block = (7 + extra + 2 * int64_t(mlp_ratio)) * btc + B * H * T + 4 * B * T;
  return recompute ? n_layers * btc + per_block : n_layers * per_block;
}

TransformerBlock::TransformerBlock(ParamStore& store, const std::string& name,
                                   const BlockOptions& o)
    : recompute_(o.recompute),
      ln1_(store, name + ".ln1", o.dim, o.ln_eps),
      attn_(store, name + ".attn", o.dim, o.n_heads, o.causal, o.init, o.proj_init),
      ln2_(store, name + ".ln2", o.dim, o.ln_eps),
      mlp_(store, name + ".mlp", o.dim, o.mlp_ratio * o.dim, o.init, o.proj_init, o.activation),
      attn_drop_(name + ".attn.drop"),
      mlp_drop_(name + ".mlp.drop") {}

void TransformerBlock::configure_dropout(float p, float path_p, const DropoutState* state,
                                         float attention_p) {
  attn_.configure_dropout(attention_p, state);
  attn_drop_.configure(p, path_p, state);
  mlp_drop_.configure(p, path_p, state);
}

Tensor TransformerBlock::run_forward(const Tensor& x) {
  Tensor h = attn_.forward(ln1_.forward(x));
  attn_drop_.apply(h);
  ops::add(h, x, h);
  Tensor y = mlp_.forward(ln2_.forward(h));
  mlp_drop_.apply(y);
  ops::add(y, h, y);
  return y;
}

Tensor TransformerBlock::forward(const Tensor& x) {
  Tensor y = run_forward(x);
  if (recompute_) {
    x_ = x;
    ln1_.drop_saved();
    attn_.drop_saved();
    ln2_.drop_saved();
    mlp_.drop_saved();
  }
  return y;
}

Tensor TransformerBlock::backward(const Tensor& dy) {
  if (recompute_) {
    run_forward(x_);
    x_ = Tensor();
  }
  // The residual passes dy through unchanged; each branch's dx is added to it.
  Tensor dh = ln2_.backward(mlp_.backward(mlp_drop_.backward(dy)));
  ops::add_inplace(dh, dy);
  Tensor dx = ln1_.backward(attn_.backward(attn_drop_.backward(dh)));
  ops::add_inplace(dx, dh);
  return dx;
}

void TransformerBlock::drop_saved() {
  x_ = Tensor();
  ln1_.drop_saved();
  attn_.drop_saved();
  ln2_.drop_saved();
  mlp_.drop_saved();
}

}  // namespace tessera::models
