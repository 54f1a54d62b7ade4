#pragma once
// LayerNorm over the last dimension with learnable scale and shift (torch.nn.LayerNorm).

#include <string>

#include "models/param_store.h"

namespace tessera::models {

class LayerNorm {
 public:
  LayerNorm(ParamStore& store, const std::string& name, int64_t dim, float eps = 1e-5f);

  Tensor forward(const Tensor& x);  // (..., C) -> (..., C)
  // Contract: dweight, dbias ACCUMULATE; the returned dx is written.
  Tensor backward(const Tensor& dy);
  void drop_saved() { x_ = mean_ = rstd_ = Tensor(); }

 private:
  ParamStore& store_;
  int64_t dim_;
  float eps_;
  ParamId weight_, bias_;
  Tensor x_, mean_, rstd_;  // saved: input and per-row statistics (N)
};

}  // namespace tessera::models
