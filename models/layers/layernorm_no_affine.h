#pragma once
// LayerNorm over the last dimension without scale and shift (torch.nn.LayerNorm with
// elementwise_affine=False), as DiT uses before every adaLN modulation: the modulation supplies
// the per-sample scale and shift instead.
//
// Built on ops::layernorm_* with a constant weight of ones and bias of zeros that are NOT
// parameters, and scratch (C) tensors for the dweight/dbias the op accumulates (zeroed each
// backward, never read). Chosen over a new op variant because it leaves the shared, tuned and
// tested LayerNorm kernel untouched, and costs nothing measurable: the op is memory bound, and
// the two extra row sums go into per-chunk partials that stay in L1 (it reads the same bytes).

#include "core/tensor.h"

namespace tessera::models {

class LayerNormNoAffine {
 public:
  explicit LayerNormNoAffine(int64_t dim, float eps = 1e-6f) : dim_(dim), eps_(eps) {}

  Tensor forward(const Tensor& x);  // (..., C) -> (..., C)
  // Contract: the returned dx is written (no parameters).
  Tensor backward(const Tensor& dy);
  void drop_saved() { x_ = mean_ = rstd_ = Tensor(); }

 private:
  void ensure_constants(Device device);

  int64_t dim_;
  float eps_;
  Tensor ones_, zeros_, dweight_, dbias_;  // (C) constants and scratch, on x's device
  Tensor x_, mean_, rstd_;                 // saved: input and per-row statistics (N)
};

}  // namespace tessera::models
