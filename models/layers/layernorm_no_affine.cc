#include "models/layers/layernorm_no_affine.h"

#include "ops/layernorm.h"

namespace tessera::models {

void LayerNormNoAffine::ensure_constants(Device device) {
  if (ones_.defined() && ones_.device() == device) return;
  Tensor ones = Tensor::empty({dim_}, DType::f32);
  for (int64_t i = 0; i < dim_; ++i) ones.data<float>()[i] = 1.0f;
  ones_ = to_device(ones, device);
  zeros_ = Tensor::zeros({dim_}, DType::f32, device);
  dweight_ = Tensor::zeros({dim_}, DType::f32, device);
  dbias_ = Tensor::zeros({dim_}, DType::f32, device);
}

Tensor LayerNormNoAffine::forward(const Tensor& x) {
  ensure_constants(x.device());
  x_ = x;
  const int64_t rows = x.numel() / dim_;
  Tensor y = Tensor::empty(x.shape(), DType::f32, x.device());
  mean_ = Tensor::empty({rows}, DType::f32, x.device());
  rstd_ = Tensor::empty({rows}, DType::f32, x.device());
  ops::layernorm_forward(x, ones_, zeros_, y, mean_, rstd_, eps_);
  return y;
}

Tensor LayerNormNoAffine::backward(const Tensor& dy) {
  Tensor dx = Tensor::empty(x_.shape(), DType::f32, dy.device());
  // The op accumulates into the scratch grads; zeroing keeps them finite over a long run.
  zero_(dweight_);
  zero_(dbias_);
  ops::layernorm_backward(dy, x_, ones_, mean_, rstd_, dx, dweight_, dbias_);
  x_ = mean_ = rstd_ = Tensor();
  return dx;
}

}  // namespace tessera::models
