#include "models/layers/transformer_block.h"

#include "ops/elementwise.h"

namespace tessera::models {

TransformerBlock::TransformerBlock(ParamStore& store, const std::string& name,
                                   const BlockOptions& o)
    : recompute_(o.recompute),
      ln1_(store, name + ".ln1", o.dim),
      attn_(store, name + ".attn", o.dim, o.n_heads, o.causal, o.init, o.proj_init),
      ln2_(store, name + ".ln2", o.dim),
      mlp_(store, name + ".mlp", o.dim, o.mlp_ratio * o.dim, o.init, o.proj_init) {}

Tensor TransformerBlock::run_forward(const Tensor& x) {
  Tensor h = attn_.forward(ln1_.forward(x));
  ops::add(h, x, h);
  Tensor y = mlp_.forward(ln2_.forward(h));
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
  Tensor dh = ln2_.backward(mlp_.backward(dy));
  ops::add_inplace(dh, dy);
  Tensor dx = ln1_.backward(attn_.backward(dh));
  ops::add_inplace(dx, dh);
  return dx;
}

}  // namespace tessera::models
