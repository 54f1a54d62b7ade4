#pragma once
// The mean of a scalar over the data-parallel group (the training and evaluation losses), so that
// every rank takes the same decisions from it. Collective over layout.dp(); a no-op with one rank.

#include "core/tensor.h"
#include "distributed/communicator.h"
#include "distributed/layout.h"

namespace tessera::train {

inline double dp_average(const distributed::ParallelLayout& layout, double value) {
  if (layout.dp_size() == 1) return value;
  Tensor t = Tensor::empty({1}, DType::f32);
  t.data<float>()[0] = static_cast<float>(value);
  layout.dp().all_reduce(t, distributed::ReduceOp::kAvg)->wait();
  return t.data<float>()[0];
}

}  // namespace tessera::train
