#include "models/layers/embedding.h"

#include "ops/embedding.h"

namespace tessera::models {

Embedding::Embedding(ParamStore& store, const std::string& name, int64_t num, int64_t dim,
                     Init init)
    : store_(store), dim_(dim) {
  table_ = store.add({name + ".weight", {num, dim}, -1, init, ParamGroup::kEmbedding});
}

Tensor Embedding::forward(const Tensor& ids) {
  ids_ = ids;
  Shape shape = ids.shape();
  shape.push_back(dim_);
  Tensor y = Tensor::empty(shape, DType::f32, ids.device());
  ops::embedding_forward(ids.view({ids.numel()}), table(), y.view({ids.numel(), dim_}));
  return y;
}

void Embedding::backward(const Tensor& dy) {
  ops::embedding_backward(dy.view({ids_.numel(), dim_}), ids_.view({ids_.numel()}), table_grad());
  ids_ = Tensor();
  store_.grad_done(table_);
}

}  // namespace tessera::models
