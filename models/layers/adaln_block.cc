#include "models/layers/adaln_block.h"

#include <cmath>

#include "ops/elementwise.h"
#include "ops/gated_residual.h"
#include "ops/modulate.h"

namespace tessera::models {
namespace {

// Xavier/Glorot uniform for a (fan_out, fan_in) matrix, as torch.nn.init.xavier_uniform_.
Init xavier(int64_t fan_in, int64_t fan_out) {
  return Init::uniform(std::sqrt(6.0f / float(fan_in + fan_out)));
}

enum Chunk { kShift1, kScale1, kGate1, kShift2, kScale2, kGate2 };

Tensor like(const Tensor& t) {
  return Tensor::empty(t.shape(), DType::f32, t.device());
}

}  // namespace

AdaLnBlock::AdaLnBlock(ParamStore& store, const std::string& name, const AdaLnBlockOptions& o)
    : recompute_(o.recompute),
      ada_(store, name + ".adaln", o.dim, 6),
      norm1_(o.dim, o.ln_eps),
      // DiT's qkv is one nn.Linear(d, 3d): Xavier over the fused (3d, d) matrix.
      attn_(store, name + ".attn", o.dim, o.n_heads, /*causal=*/false, xavier(o.dim, 3 * o.dim),
            xavier(o.dim, o.dim)),
      norm2_(o.dim, o.ln_eps),
      mlp_(store, name + ".mlp", o.dim, o.mlp_ratio * o.dim, xavier(o.dim, o.mlp_ratio * o.dim),
           xavier(o.mlp_ratio * o.dim, o.dim), o.activation) {}

Tensor AdaLnBlock::run_forward(const Tensor& x, const Tensor& c) {
  mod_ = ada_.forward(c);  // (6, B, d)
  auto m = [&](int k) { return Modulation::chunk(mod_, k); };
  n1_ = norm1_.forward(x);  // (B, T, d)
  Tensor in1 = like(x);     // (B, T, d)
  ops::modulate_forward(n1_, m(kShift1), m(kScale1), in1);
  a_ = attn_.forward(in1);  // (B, T, d)
  Tensor h = like(x);       // (B, T, d)
  ops::gated_residual_forward(x, m(kGate1), a_, h);
  n2_ = norm2_.forward(h);
  Tensor in2 = like(x);
  ops::modulate_forward(n2_, m(kShift2), m(kScale2), in2);
  f_ = mlp_.forward(in2);  // (B, T, d)
  Tensor y = like(x);
  ops::gated_residual_forward(h, m(kGate2), f_, y);
  return y;
}

void AdaLnBlock::drop_saved() {
  mod_ = n1_ = a_ = n2_ = f_ = Tensor();
  ada_.drop_saved();
  norm1_.drop_saved();
  attn_.drop_saved();
  norm2_.drop_saved();
  mlp_.drop_saved();
}

Tensor AdaLnBlock::forward(const Tensor& x, const Tensor& c) {
  Tensor y = run_forward(x, c);
  if (recompute_) {
    x_ = x;
    c_ = c;
    drop_saved();
  }
  return y;
}

AdaLnGrads AdaLnBlock::backward(const Tensor& dy) {
  if (recompute_) {
    run_forward(x_, c_);
    x_ = c_ = Tensor();
  }
  auto m = [&](int k) { return Modulation::chunk(mod_, k); };
  Tensor dmod = like(mod_);  // (6, B, d), every chunk written below
  auto dm = [&](int k) { return Modulation::chunk(dmod, k); };
  // y = h + gate2 * f: dh gets dy through the residual plus the MLP branch's dx.
  Tensor df = like(dy);
  ops::gated_residual_backward(dy, m(kGate2), f_, dm(kGate2), df);
  Tensor din2 = mlp_.backward(df);
  Tensor dn2 = like(dy);
  ops::modulate_backward(din2, n2_, m(kScale2), dn2, dm(kShift2), dm(kScale2));
  Tensor dh = norm2_.backward(dn2);
  ops::add_inplace(dh, dy);
  // h = x + gate1 * a.
  Tensor da = like(dy);
  ops::gated_residual_backward(dh, m(kGate1), a_, dm(kGate1), da);
  Tensor din1 = attn_.backward(da);
  Tensor dn1 = like(dy);
  ops::modulate_backward(din1, n1_, m(kScale1), dn1, dm(kShift1), dm(kScale1));
  Tensor dx = norm1_.backward(dn1);
  ops::add_inplace(dx, dh);
  mod_ = n1_ = a_ = n2_ = f_ = Tensor();
  return {dx, ada_.backward(dmod)};
}

AdaLnFinal::AdaLnFinal(ParamStore& store, const std::string& name, int64_t dim, int64_t out,
                       float ln_eps)
    : ada_(store, name + ".adaln", dim, 2),
      norm_(dim, ln_eps),
      linear_(store, name + ".linear", dim, out, true, Init::zeros()) {}

Tensor AdaLnFinal::forward(const Tensor& x, const Tensor& c) {
  mod_ = ada_.forward(c);  // (2, B, d): shift, scale
  n_ = norm_.forward(x);   // (B, T, d)
  Tensor in = like(x);     // (B, T, d)
  ops::modulate_forward(n_, Modulation::chunk(mod_, 0), Modulation::chunk(mod_, 1), in);
  return linear_.forward(in);  // (B, T, out)
}

AdaLnGrads AdaLnFinal::backward(const Tensor& dy) {
  Tensor din = linear_.backward(dy);  // (B, T, d)
  Tensor dmod = like(mod_);           // (2, B, d)
  Tensor dn = like(din);
  ops::modulate_backward(din, n_, Modulation::chunk(mod_, 1), dn, Modulation::chunk(dmod, 0),
                         Modulation::chunk(dmod, 1));
  Tensor dx = norm_.backward(dn);
  mod_ = n_ = Tensor();
  return {dx, ada_.backward(dmod)};
}

}  // namespace tessera::models
