#include "models/layers/modulation.h"

#include "ops/elementwise.h"
#include "ops/matmul.h"

namespace tessera::models {

Modulation::Modulation(ParamStore& store, const std::string& name, int64_t dim, int chunks)
    : store_(store), dim_(dim), chunks_(chunks) {
  weight_ =
      store.add({name + ".weight", {chunks * dim, dim}, -1, Init::zeros(), ParamGroup::kWeight});
  bias_ = store.add({name + ".bias", {chunks * dim}, -1, Init::zeros(), ParamGroup::kNormOrBias});
}

Tensor Modulation::forward(const Tensor& c) {
  c_ = c;
  const int64_t B = c.dim(0), d = dim_;
  Tensor out = Tensor::empty({chunks_, B, d}, DType::f32, c.device());  // (n, B, d)
  Tensor w = store_.param(weight_), b = store_.param(bias_);
  for (int k = 0; k < chunks_; ++k) {
    ops::linear_forward(c, w.flat_view(k * d * d, {d, d}), b.flat_view(k * d, {d}), chunk(out, k));
  }
  return out;
}

Tensor Modulation::backward(const Tensor& dout) {
  const int64_t B = c_.dim(0), d = dim_;
  Tensor w = store_.param(weight_), dw = store_.grad(weight_), db = store_.grad(bias_);
  Tensor dc = Tensor::empty({B, d}, DType::f32, dout.device());
  Tensor part = Tensor::empty({B, d}, DType::f32, dout.device());
  for (int k = 0; k < chunks_; ++k) {
    ops::linear_backward(chunk(dout, k), c_, w.flat_view(k * d * d, {d, d}), k == 0 ? dc : part,
                         dw.flat_view(k * d * d, {d, d}), db.flat_view(k * d, {d}));
    if (k > 0) ops::add_inplace(dc, part);
  }
  c_ = Tensor();
  store_.grad_done(weight_);
  store_.grad_done(bias_);
  return dc;
}

}  // namespace tessera::models
