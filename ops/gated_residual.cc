// Adapters for ops/gated_residual.h: check dtypes, shapes and devices, then dispatch.
#include "ops/gated_residual.h"

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/gated_residual.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/gated_residual.cuh"
#endif

namespace tessera::ops {

void gated_residual_forward(const Tensor& x, const Tensor& gate, const Tensor& h, const Tensor& y) {
  TESSERA_PROFILE("gated_residual");
  OpCheck c("gated_residual_forward");
  c.tensor_ndim("x", x, DType::f32, 3);
  const int64_t b = x.dim(0), t = x.dim(1), cols = x.dim(2);
  c.tensor("gate", gate, DType::f32, {b, cols})
      .tensor("h", h, DType::f32, x.shape())
      .tensor("y", y, DType::f32, x.shape());
  if (c.device().is_cpu()) {
    cpu::gated_residual_forward(x.data<float>(), gate.data<float>(), h.data<float>(),
                                y.data<float>(), b, t, cols);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::gated_residual_forward(x.data<float>(), gate.data<float>(), h.data<float>(),
                                        y.data<float>(), b, t, cols, stream_for(c)));
  }
}

void gated_residual_backward(const Tensor& dy, const Tensor& gate, const Tensor& h,
                             const Tensor& dgate, const Tensor& dh) {
  TESSERA_PROFILE("gated_residual");
  OpCheck c("gated_residual_backward");
  c.tensor_ndim("h", h, DType::f32, 3);
  const int64_t b = h.dim(0), t = h.dim(1), cols = h.dim(2);
  c.tensor("dy", dy, DType::f32, h.shape())
      .tensor("gate", gate, DType::f32, {b, cols})
      .tensor("dgate", dgate, DType::f32, {b, cols})
      .tensor("dh", dh, DType::f32, h.shape());
  if (c.device().is_cpu()) {
    cpu::gated_residual_backward(dy.data<float>(), gate.data<float>(), h.data<float>(),
                                 dgate.data<float>(), dh.data<float>(), b, t, cols);
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda::gated_residual_backward(
                               dy.data<float>(), gate.data<float>(), h.data<float>(),
                               dgate.data<float>(), dh.data<float>(), b, t, cols, stream_for(c)));
  }
}

}  // namespace tessera::ops
