// Adapters for ops/activation.h: check dtypes, shapes and devices, then dispatch.
#include "ops/activation.h"

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/activation.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/activation.cuh"
#endif

namespace tessera::ops {

void gelu_forward(const Tensor& x, const Tensor& y) {
  TESSERA_PROFILE("activation");
  OpCheck c("gelu_forward");
  c.tensor("x", x, DType::f32).tensor("y", y, DType::f32, x.shape());
  if (c.device().is_cpu()) {
    cpu::gelu_forward(x.data<float>(), y.data<float>(), x.numel());
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::gelu_forward(x.data<float>(), y.data<float>(), x.numel(), stream_for(c)));
  }
}

void gelu_backward(const Tensor& dy, const Tensor& x, const Tensor& dx) {
  TESSERA_PROFILE("activation");
  OpCheck c("gelu_backward");
  c.tensor("x", x, DType::f32)
      .tensor("dy", dy, DType::f32, x.shape())
      .tensor("dx", dx, DType::f32, x.shape());
  if (c.device().is_cpu()) {
    cpu::gelu_backward(dy.data<float>(), x.data<float>(), dx.data<float>(), x.numel());
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda::gelu_backward(dy.data<float>(), x.data<float>(), dx.data<float>(),
                                               x.numel(), stream_for(c)));
  }
}

}  // namespace tessera::ops
