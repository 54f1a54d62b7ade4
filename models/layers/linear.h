#pragma once
// y = x W^T + b, as torch.nn.Linear. Keeps x for backward.
//
// Tensor parallelism (Megatron): a column-parallel layer splits its output features across TP
// ranks, a row-parallel layer its input features. The layer makes Megatron's communication
// itself (tensor_parallel.h): a column-parallel layer is wrapped in f, copy to the region (its
// input is replicated: identity forward, backward all-reduces dx), a row-parallel one in g,
// reduce from the region (forward all-reduces y, identity backward). A
// row-parallel bias stays whole (replicated) and is added once: by TP rank 0 only, before the
// all-reduce (so it is inside the sum exactly once, with no extra pass); its gradient, the sum of
// the replicated dy, is computed on every rank and is identical everywhere.
// A fused projection such as QKV has `groups` = 3: its weight is registered
// with global shape (3, out/3, in) and split along dimension 1, so each rank holds the q, k and v
// rows of its own heads, and its local weight, read as (local_out, in), is again [q | k | v].

#include <string>

#include "models/param_store.h"

namespace tessera::models {

enum class Parallel { kNone, kColumn, kRow };

class Linear {
 public:
  // weight initialised by `init`; bias zero-initialised and exempt from weight decay.
  Linear(ParamStore& store, const std::string& name, int64_t in, int64_t out, bool bias, Init init,
         Parallel parallel = Parallel::kNone, int groups = 1);

  Tensor forward(const Tensor& x);  // x (..., in_local) -> (..., out_local)
  // Contract: dweight, dbias ACCUMULATE (+=); the returned dx is written. With need_dx false
  // (the first layer of a model) dx is not computed and an undefined tensor is returned.
  Tensor backward(const Tensor& dy, bool need_dx = true);  // dy (..., out_local) -> dx

  void drop_saved() { x_ = Tensor(); }

  int64_t in_features() const { return in_; }    // local (this TP rank's)
  int64_t out_features() const { return out_; }  // local (this TP rank's)

 private:
  Tensor weight() const;  // (out_local, in_local) view of the parameter
  Tensor bias() const;
  Tensor weight_grad() const;
  Tensor bias_grad() const;

  ParamStore& store_;
  Parallel parallel_;
  int64_t in_ = 0, out_ = 0;
  ParamId weight_ = -1, bias_ = -1;
  Tensor x_;  // saved input
};

}  // namespace tessera::models
