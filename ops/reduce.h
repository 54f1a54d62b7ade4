#pragma once
// Whole-tensor reductions of f32 tensors of any shape (treated as flat), returned as double.
// Their main use is global-norm gradient clipping on the flat gradient buffer (docs/DESIGN.md
// decision 3): each rank computes sum_squares of its slice, the distributed code all-reduces
// the partial sums, and the trainer takes the square root. That is why sum_squares is public
// next to l2_norm. A NaN or Inf anywhere in x propagates to the result, so the same call is the
// mixed-precision overflow check.
//
// Determinism: x is cut into fixed 32768-element chunks, each chunk is summed in double with a
// fixed lane layout, and the chunk sums are added in order. The chunking does not depend on the
// thread count, so the result is bitwise the same for any number of threads (and for the
// AVX-512, AVX2 and baseline builds of the kernel: every float converts and squares exactly in
// double, and the additions happen in the same order in every build).
//
// On a CUDA device these will return to the host, i.e. synchronise; none exist yet.
//
// No backward: these feed the optimizer and logging, never the model's loss.

#include "core/tensor.h"

namespace tessera::ops {

double sum(const Tensor& x);          // (any) f32
double mean(const Tensor& x);         // (any) f32; NaN when x is empty, as in PyTorch
double sum_squares(const Tensor& x);  // (any) f32; sum of x[i]^2
double l2_norm(const Tensor& x);      // (any) f32; sqrt(sum_squares(x))

}  // namespace tessera::ops
