#pragma once
// Lookup table: row ids[i] of the table for each id (torch.nn.Embedding).

#include <string>

#include "models/param_store.h"

namespace tessera::models {

class Embedding {
 public:
  Embedding(ParamStore& store, const std::string& name, int64_t num, int64_t dim, Init init);

  Tensor forward(const Tensor& ids);  // ids (...) i32 -> (..., dim)
  // Contract: dtable ACCUMULATES (scatter-add); ids have no gradient.
  void backward(const Tensor& dy);  // dy (..., dim)

  Tensor table() const { return store_.param(table_); }  // (num, dim); tied output heads read it
  Tensor table_compute() const { return store_.compute_param(table_); }  // f32 or bf16 shadow
  Tensor table_grad() const { return store_.grad(table_); }
  int64_t dim() const { return dim_; }

 private:
  ParamStore& store_;
  int64_t dim_;
  ParamId table_;
  Tensor ids_;  // saved
};

}  // namespace tessera::models
