// Adapters for ops/softmax.h: check dtypes, shapes and devices, then dispatch.
#include "ops/softmax.h"

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/softmax.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/softmax.cuh"
#endif

namespace tessera::ops {

void softmax_forward(const Tensor& x, const Tensor& y) {
  TESSERA_PROFILE("softmax");
  OpCheck c("softmax_forward");
  c.tensor("x", x, DType::f32).tensor("y", y, DType::f32, x.shape());
  c.expect(x.ndim() >= 1, "x must have at least 1 dimension, got " + x.describe());
  const int64_t cols = x.dim(-1);
  if (c.device().is_cpu()) {
    if (cols == 0) return;
    cpu::softmax_forward(x.data<float>(), y.data<float>(), x.numel() / cols, cols);
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda::softmax_forward(x.data<float>(), y.data<float>(),
                                                 cols ? x.numel() / cols : 0, cols, stream_for(c)));
  }
}

void softmax_backward(const Tensor& dy, const Tensor& y, const Tensor& dx) {
  TESSERA_PROFILE("softmax");
  OpCheck c("softmax_backward");
  c.tensor("dy", dy, DType::f32)
      .tensor("y", y, DType::f32, dy.shape())
      .tensor("dx", dx, DType::f32, dy.shape());
  c.expect(dy.ndim() >= 1, "dy must have at least 1 dimension, got " + dy.describe());
  const int64_t cols = dy.dim(-1);
  if (c.device().is_cpu()) {
    if (cols == 0) return;
    cpu::softmax_backward(dy.data<float>(), y.data<float>(), dx.data<float>(), dy.numel() / cols,
                          cols);
  } else {
    TESSERA_CUDA_LAUNCH(c,
                        cuda::softmax_backward(dy.data<float>(), y.data<float>(), dx.data<float>(),
                                               cols ? dy.numel() / cols : 0, cols, stream_for(c)));
  }
}

}  // namespace tessera::ops
