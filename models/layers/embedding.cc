#include "models/layers/embedding.h"

#include <algorithm>

#include "models/layers/tensor_parallel.h"
#include "ops/elementwise.h"
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
  if (store_.num_slices(table_) > 1) {
    // The table in row slices (ParamStore::set_slice_bytes: ZeRO-3 gathers one at a time): each
    // slice looks up the ids in its rows, zero rows for the others, and the slices' rows are
    // added (every row comes from one slice; x + 0 == x, a -0.0 entry reads +0.0).
    const int64_t n = ids.numel(), per = store_.slice_rows(table_);
    const int64_t base = split() ? local_begin() : 0;
    const Tensor flat = ids.view({n}), out = y.view({n, dim_});
    Tensor part;
    for (int k = 0; k < store_.num_slices(table_); ++k) {
      const Tensor rows = store_.param_slice(table_, k);
      if (k > 0 && !part.defined()) part = Tensor::empty({n, dim_}, DType::f32, ids.device());
      ops::vocab_embedding_forward(flat, rows, base + k * per, valid_, k == 0 ? out : part);
      if (k > 0) ops::add_inplace(out, part);
    }
    if (split()) tp_reduce_from_region_forward(store_, y);
    return y;
  }
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

void add_to_row_range(int64_t begin, const Tensor& out, int64_t C,
                      const std::function<void(int64_t row, const Tensor& dst)>& add) {
  const int64_t end = begin + out.numel();
  int64_t at = begin;
  while (at < end) {
    const int64_t row = at / C, col = at % C;
    if (col == 0 && end - at >= C) {  // whole rows: a view of out
      const int64_t rows = (end - at) / C;
      add(row, out.flat_view(at - begin, {rows, C}));
      at += rows * C;
      continue;
    }
    const int64_t n = std::min(C - col, end - at);  // part of one row
    Tensor tmp = Tensor::zeros({1, C}, DType::f32, out.device());
    copy(out.flat_view(at - begin, {n}), tmp.flat_view(col, {n}));
    add(row, tmp);
    copy(tmp.flat_view(col, {n}), out.flat_view(at - begin, {n}));
    at += n;
  }
}

void Embedding::backward(const Tensor& dy_out) {
  if (store_.grads_staged() && !store_.frozen(table_)) {
    // Gradient staging (ZeRO-2/3): no dense (num, dim) gradient. Keep dy and the ids; the
    // reduction takes the table's gradient bucket by bucket, each scattering only the ids in
    // its rows (ParamStore::add_grad_source). Per element the same additions in the same order
    // as the dense scatter-add below, so the result is bitwise the same.
    const int64_t n = ids_.numel();
    const Tensor dy =
        (split() ? tp_reduce_from_region_backward(store_, dy_out) : dy_out).view({n, dim_});
    const Tensor ids = ids_.view({n});
    const int64_t base = split() ? local_begin() : 0, C = dim_;
    store_.add_grad_source(
        table_,
        [dy, ids, base, C](int64_t begin, const Tensor& out) {
          add_to_row_range(begin, out, C, [&](int64_t row, const Tensor& dst) {
            ops::vocab_embedding_backward(dy, ids, base + row, dst);
          });
        },
        int64_t(dy.nbytes() + ids.nbytes()));
    ids_ = Tensor();
    store_.grad_done(table_);
    return;
  }
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
