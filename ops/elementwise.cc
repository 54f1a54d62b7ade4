// Adapters for ops/elementwise.h: check dtypes, shapes and devices, then dispatch.
#include "ops/elementwise.h"

#include "core/timer.h"
#include "ops/cpu/elementwise.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/elementwise.cuh"
#endif

namespace tessera::ops {

void add(const Tensor& a, const Tensor& b, const Tensor& out) {
  TESSERA_PROFILE("elementwise");
  OpCheck c("add");
  c.tensor("a", a, DType::f32)
      .tensor("b", b, DType::f32, a.shape())
      .tensor("out", out, DType::f32, a.shape());
  if (c.device().is_cpu()) {
    cpu::add(a.data<float>(), b.data<float>(), out.data<float>(), a.numel());
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda::add(a.data<float>(), b.data<float>(), out.data<float>(),
                                     a.numel(), stream_for(c)));
  }
}

void add_inplace(const Tensor& dst, const Tensor& src) {
  TESSERA_PROFILE("elementwise");
  OpCheck c("add_inplace");
  c.tensor("dst", dst, DType::f32).tensor("src", src, DType::f32, dst.shape());
  if (c.device().is_cpu()) {
    cpu::add_inplace(dst.data<float>(), src.data<float>(), dst.numel());
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda::add(dst.data<float>(), src.data<float>(), dst.data<float>(),
                                     dst.numel(), stream_for(c)));
  }
}

void scale(const Tensor& x, float alpha, const Tensor& out) {
  TESSERA_PROFILE("elementwise");
  OpCheck c("scale");
  c.tensor("x", x, DType::f32).tensor("out", out, DType::f32, x.shape());
  if (c.device().is_cpu()) {
    cpu::scale(x.data<float>(), alpha, out.data<float>(), x.numel());
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda::scale(x.data<float>(), alpha, out.data<float>(), x.numel(),
                                       stream_for(c)));
  }
}

}  // namespace tessera::ops
