#pragma once
// Transformer MLP: fc (C -> ratio*C, column parallel), the activation (GELU tanh by default;
// exact GELU or QuickGELU by config), proj (ratio*C -> C, row parallel).

#include <string>

#include "models/layers/linear.h"
#include "ops/activation.h"

namespace tessera::models {

class Mlp {
 public:
  // proj_init: the residual projection's init (GPT-2 scales it by 1/sqrt(2 * n_layers)).
  Mlp(ParamStore& store, const std::string& name, int64_t dim, int64_t hidden, Init init,
      Init proj_init, ops::Activation activation = ops::Activation::kGeluTanh);

  Tensor forward(const Tensor& x);  // (..., C) -> (..., C)
  // Contract: parameter grads ACCUMULATE; the returned dx is written.
  Tensor backward(const Tensor& dy);
  void drop_saved();  // frees what backward needs (activation recomputation)

 private:
  Linear fc_, proj_;
  ops::Activation activation_;
  Tensor pre_;  // saved fc output, the activation's input (..., hidden)
};

}  // namespace tessera::models
