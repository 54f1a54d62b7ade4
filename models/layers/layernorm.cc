#include "models/layers/layernorm.h"

#include "ops/layernorm.h"

namespace tessera::models {

LayerNorm::LayerNorm(ParamStore& store, const std::string& name, int64_t dim, float eps)
    : store_(store), dim_(dim), eps_(eps) {
  weight_ = store.add({name + ".weight", {dim}, -1, Init::ones(), ParamGroup::kNormOrBias});
  bias_ = store.add({name + ".bias", {dim}, -1, Init::zeros(), ParamGroup::kNormOrBias});
}

Tensor LayerNorm::forward(const Tensor& x) {
  x_ = x;
  const int64_t rows = x.numel() / dim_;
  Tensor y = Tensor::empty(x.shape(), DType::f32, x.device());
  mean_ = Tensor::empty({rows}, DType::f32, x.device());
  rstd_ = Tensor::empty({rows}, DType::f32, x.device());
  ops::layernorm_forward(x, store_.param(weight_), store_.param(bias_), y, mean_, rstd_, eps_);
  return y;
}

Tensor LayerNorm::backward(const Tensor& dy) {
  Tensor dx = Tensor::empty(x_.shape(), DType::f32, dy.device());
  ops::layernorm_backward(dy, x_, store_.param(weight_), mean_, rstd_, dx, store_.grad(weight_),
                          store_.grad(bias_));
  x_ = mean_ = rstd_ = Tensor();
  store_.grad_done(weight_);
  store_.grad_done(bias_);
  return dx;
}

}  // namespace tessera::models
