#include "models/layers/mlp.h"

#include "ops/activation.h"

namespace tessera::models {

Mlp::Mlp(ParamStore& store, const std::string& name, int64_t dim, int64_t hidden, Init init,
         Init proj_init, ops::Activation activation)
    : fc_(store, name + ".fc", dim, hidden, true, init, Parallel::kColumn),
      proj_(store, name + ".proj", hidden, dim, true, proj_init, Parallel::kRow),
      activation_(activation) {}

Tensor Mlp::forward(const Tensor& x) {
  pre_ = fc_.forward(x);
  Tensor h = Tensor::empty(pre_.shape(), DType::f32, x.device());
  ops::activation_forward(activation_, pre_, h);
  return proj_.forward(h);
}

Tensor Mlp::backward(const Tensor& dy) {
  Tensor dh = proj_.backward(dy);
  ops::activation_backward(activation_, dh, pre_, dh);  // in place: dh becomes d(pre)
  pre_ = Tensor();
  return fc_.backward(dh);
}

void Mlp::drop_saved() {
  pre_ = Tensor();
  fc_.drop_saved();
  proj_.drop_saved();
}

}  // namespace tessera::models
