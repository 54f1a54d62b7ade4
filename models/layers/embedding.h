#pragma once
// Lookup table: row ids[i] of the table for each id (torch.nn.Embedding).
//
// Tensor parallelism: replicated by default (every TP rank holds the whole table; its gradient
// comes from the replicated residual stream, so it is identical on every rank). With
// vocab_parallel the table is split along the vocabulary (Megatron's VocabParallelEmbedding):
// this rank looks up the ids in its range [begin, begin + num/T), writes zero rows for the
// others, and the partial rows are all-reduced (g); backward scatters only into its own rows.

#include <functional>
#include <string>

#include "models/param_store.h"

namespace tessera::models {

// Deferred row gradients (ParamStore::add_grad_source): `out` holds elements [begin, begin +
// out.numel()) of a row-major (rows, C) gradient. Calls add(row, dst) for the rows it covers, dst
// (k, C) rows starting at `row`, into which add() ADDS that part; whole rows are views of out, a
// row cut by the range goes through a (1, C) copy of its part (so every element sees the same
// additions in the same order as in a dense table).
void add_to_row_range(int64_t begin, const Tensor& out, int64_t C,
                      const std::function<void(int64_t row, const Tensor& dst)>& add);

class Embedding {
 public:
  // padding_from >= 0: rows [padding_from, num) are vocabulary padding (models/gpt.h): they start
  // at zero (ParamSpec::zero_rows_from) and no valid id reaches them: an id >= padding_from is
  // an error naming it, like one >= num.
  Embedding(ParamStore& store, const std::string& name, int64_t num, int64_t dim, Init init,
            bool vocab_parallel = false, int64_t padding_from = -1);

  Tensor forward(const Tensor& ids);  // ids (...) i32 -> (..., dim)
  // Contract: dtable ACCUMULATES (scatter-add); ids have no gradient. Under gradient staging
  // (ZeRO-2/3) the scatter-add is deferred to when the reduction takes the table's buckets
  // (ParamStore::add_grad_source): dy is kept, and the caller must not write into it afterwards.
  void backward(const Tensor& dy);  // dy (..., dim)

  // (num_local, dim): this rank's rows (all of them unless vocab parallel); tied heads read it.
  Tensor table() const { return store_.param(table_); }
  Tensor table_compute() const { return store_.compute_param(table_); }  // f32 or bf16 shadow
  Tensor table_grad() const { return store_.grad(table_); }
  ParamId table_id() const { return table_; }
  int64_t dim() const { return dim_; }
  int64_t num() const { return num_; }  // global
  int64_t local_begin() const { return store_.info(table_).local_begin; }
  int64_t local_num() const { return store_.info(table_).local_shape[0]; }
  bool split() const { return vocab_parallel_ && store_.tp_size() > 1; }

 private:
  ParamStore& store_;
  int64_t dim_, num_;
  int64_t valid_;  // ids must be below this: padding_from, or num without padding
  bool vocab_parallel_;
  ParamId table_;
  Tensor ids_;  // saved
};

}  // namespace tessera::models
