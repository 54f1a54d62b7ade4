#include "models/layers/linear.h"

#include "models/layers/tensor_parallel.h"
#include "ops/matmul.h"

namespace tessera::models {

Linear::Linear(ParamStore& store, const std::string& name, int64_t in, int64_t out, bool bias,
               Init init, Parallel parallel, int groups)
    : store_(store), parallel_(parallel) {
  TESSERA_CHECK(groups >= 1 && out % groups == 0, "Linear ", name, ": ", out,
                " outputs do not form ", groups, " groups");
  TESSERA_CHECK(groups == 1 || parallel != Parallel::kRow, "Linear ", name,
                ": a grouped projection cannot be row parallel");
  Shape w_shape = groups == 1 ? Shape{out, in} : Shape{groups, out / groups, in};
  Shape b_shape = groups == 1 ? Shape{out} : Shape{groups, out / groups};
  const int out_dim = groups == 1 ? 0 : 1;
  const int w_split = parallel == Parallel::kColumn ? out_dim : parallel == Parallel::kRow ? 1 : -1;
  const int b_split = parallel == Parallel::kColumn ? out_dim : -1;
  weight_ = store.add({name + ".weight", w_shape, w_split, init, ParamGroup::kWeight});
  if (bias)
    bias_ = store.add({name + ".bias", b_shape, b_split, Init::zeros(), ParamGroup::kNormOrBias});
  const Shape& local = store.info(weight_).local_shape;
  in_ = local.back();
  out_ = store.info(weight_).numel / in_;
}

Tensor Linear::weight() const {
  return store_.compute_param(weight_).view({out_, in_});
}
// A frozen parameter (train.freeze) takes no gradient: undefined skips its product.
Tensor Linear::weight_grad() const {
  return store_.frozen(weight_) ? Tensor() : store_.grad(weight_).view({out_, in_});
}
Tensor Linear::bias() const {
  return bias_ < 0 ? Tensor() : store_.param(bias_).view({out_});
}
Tensor Linear::bias_grad() const {
  return bias_ < 0 || store_.frozen(bias_) ? Tensor() : store_.grad(bias_).view({out_});
}

Tensor Linear::forward(const Tensor& input) {
  // Column parallel: f's forward half, the identity (its backward half ends backward()).
  const Tensor& x =
      parallel_ == Parallel::kColumn ? tp_copy_to_region_forward(store_, input) : input;
  x_ = x;
  if (store_.compute_dtype() == DType::bf16) {
    // bf16 compute: the input is rounded once here and kept in bf16 for backward (half the
    // memory of the f32 activation).
    x_ = Tensor::empty(x.shape(), DType::bf16, x.device());
    ops::convert(x, x_);
  }
  Shape shape = x.shape();
  shape.back() = out_;
  Tensor y = Tensor::empty(shape, DType::f32, x.device());
  if (parallel_ == Parallel::kRow && store_.tp_size() > 1) {
    // Partial sums over this rank's input features; the bias once (rank 0), then g's forward
    // half sums them (its backward half starts backward()).
    ops::linear_forward(x_, weight(), store_.tp_rank() == 0 ? bias() : Tensor(), y);
    tp_reduce_from_region_forward(store_, y);
    return y;
  }
  ops::linear_forward(x_, weight(), bias(), y);
  return y;
}

Tensor Linear::backward(const Tensor& dy_out, bool need_dx) {
  // Row parallel: g's backward half, the identity (dy is replicated on every TP rank).
  const Tensor& dy =
      parallel_ == Parallel::kRow ? tp_reduce_from_region_backward(store_, dy_out) : dy_out;
  Tensor dx = need_dx ? Tensor::empty(x_.shape(), DType::f32, dy.device()) : Tensor();
  // In bf16 mode dy stays f32 here; linear_backward rounds it for the two products and sums the
  // bias gradient from the unrounded values.
  ops::linear_backward(dy, x_, weight(), dx, weight_grad(), bias_grad());
  x_ = Tensor();
  store_.grad_done(weight_);
  if (bias_ >= 0) store_.grad_done(bias_);
  // Column parallel: f's backward half, the replicated input's gradient summed over ranks.
  if (parallel_ == Parallel::kColumn && need_dx) tp_copy_to_region_backward(store_, dx);
  return dx;
}

}  // namespace tessera::models
