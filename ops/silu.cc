// Adapters for ops/silu.h: check dtypes, shapes and devices, then dispatch.
#include "ops/silu.h"

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/silu.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/silu.cuh"
#endif

namespace tessera::ops {

void silu_forward(const Tensor& x, const Tensor& y) {
  TESSERA_PROFILE("silu");
  OpCheck c("silu_forward");
  c.tensor("x", x, DType::f32).tensor("y", y, DType::f32, x.shape());
  if (c.device().is_cpu()) {
    cpu::silu_forward(x.data<float>(), y.data<float>(), x.numel());
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::silu_forward(x.data<float>(), y.data<float>(), x.numel(), stream_for(c)));
  }
}

void silu_backward(const Tensor& dy, const Tensor& x, const Tensor& dx) {
  TESSERA_PROFILE("silu");
  OpCheck c("silu_backward");
  c.tensor("x", x, DType::f32)
      .tensor("dy", dy, DType::f32, x.shape())
      .tensor("dx", dx, DType::f32, x.shape());
  if (c.device().is_cpu()) {
    cpu::silu_backward(dy.data<float>(), x.data<float>(), dx.data<float>(), x.numel());
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda::silu_backward(dy.data<float>(), x.data<float>(), dx.data<float>(),
                                               x.numel(), stream_for(c)));
  }
}

}  // namespace tessera::ops
