// Adapters for ops/modulate.h: check dtypes, shapes and devices, then dispatch.
#include "ops/modulate.h"

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/modulate.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/modulate.cuh"
#endif

namespace tessera::ops {

void modulate_forward(const Tensor& x, const Tensor& shift, const Tensor& scale, const Tensor& y) {
  TESSERA_PROFILE("modulate");
  OpCheck c("modulate_forward");
  c.tensor_ndim("x", x, DType::f32, 3);
  const int64_t b = x.dim(0), t = x.dim(1), cols = x.dim(2);
  c.tensor("shift", shift, DType::f32, {b, cols})
      .tensor("scale", scale, DType::f32, {b, cols})
      .tensor("y", y, DType::f32, x.shape());
  if (c.device().is_cpu()) {
    cpu::modulate_forward(x.data<float>(), shift.data<float>(), scale.data<float>(),
                          y.data<float>(), b, t, cols);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::modulate_forward(x.data<float>(), shift.data<float>(), scale.data<float>(),
                                  y.data<float>(), b, t, cols, stream_for(c)));
  }
}

void modulate_backward(const Tensor& dy, const Tensor& x, const Tensor& scale, const Tensor& dx,
                       const Tensor& dshift, const Tensor& dscale) {
  TESSERA_PROFILE("modulate");
  OpCheck c("modulate_backward");
  c.tensor_ndim("x", x, DType::f32, 3);
  const int64_t b = x.dim(0), t = x.dim(1), cols = x.dim(2);
  c.tensor("dy", dy, DType::f32, x.shape())
      .tensor("scale", scale, DType::f32, {b, cols})
      .tensor("dx", dx, DType::f32, x.shape())
      .tensor("dshift", dshift, DType::f32, {b, cols})
      .tensor("dscale", dscale, DType::f32, {b, cols});
  if (c.device().is_cpu()) {
    cpu::modulate_backward(dy.data<float>(), x.data<float>(), scale.data<float>(), dx.data<float>(),
                           dshift.data<float>(), dscale.data<float>(), b, t, cols);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::modulate_backward(dy.data<float>(), x.data<float>(), scale.data<float>(),
                                   dx.data<float>(), dshift.data<float>(), dscale.data<float>(), b,
                                   t, cols, stream_for(c)));
  }
}

}  // namespace tessera::ops
