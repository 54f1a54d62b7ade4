#include "models/layers/embedding.h"

#include "models/layers/tensor_parallel.h"
#include "ops/embedding.h"
#include "ops/vocab_parallel.h"

namespace tessera::models {

Embedding::Embedding(ParamStore& store, const std::string& name, int64_t num, int64_t dim,
                     Init init, bool vocab_parallel, int64_t padding_from)
    : store_(store),
      dim_(dim),
      num_(num),
      valid_(padding_from >= 0 ? padding_from : num),
      vocab_parallel_(vocab_parallel) {
  table_ = store.add({name + ".weight",
                      {num, dim},
                      vocab_parallel ? 0 : -1,
                      init,
                      ParamGroup::kEmbedding,
                      padding_from});
}

Tensor Embedding::forward(const Tensor& ids) {
  ids_ = ids;
  Shape shape = ids.shape();
  shape.push_back(dim_);
  Tensor y = Tensor::empty(shape, DType::f32, ids.device());
  if (split()) {
    // This rank's ids, zero rows for the rest; then g's forward half sums the ranks' rows.
    ops::vocab_embedding_forward(ids.view({ids.numel()}), table(), local_begin(), valid_,
                                 y.view({ids.numel(), dim_}));
    tp_reduce_from_region_forward(store_, y);
    return y;
  }
  // The real rows only (a view): the op's range check then refuses padded ids.
  ops::embedding_forward(ids.view({ids.numel()}), table().slice(0, valid_),
                         y.view({ids.numel(), dim_}));
  return y;
}

void Embedding::backward(const Tensor& dy_out) {
  if (split()) {
    // g's backward half is the identity: dy is replicated; scatter only into this rank's rows.
    const Tensor& dy = tp_reduce_from_region_backward(store_, dy_out);
    ops::vocab_embedding_backward(dy.view({ids_.numel(), dim_}), ids_.view({ids_.numel()}),
                                  local_begin(), table_grad());
  } else {
    ops::embedding_backward(dy_out.view({ids_.numel(), dim_}), ids_.view({ids_.numel()}),
                            table_grad().slice(0, valid_));
  }
  ids_ = Tensor();
  store_.grad_done(table_);
}

}  // namespace tessera::models
