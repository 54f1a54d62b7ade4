// Adapters for ops/elementwise.h: check dtypes, shapes and devices, then dispatch.
#include "ops/elementwise.h"

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/elementwise.h"

namespace tessera::ops {

void add(const Tensor& a, const Tensor& b, const Tensor& out) {
  TESSERA_PROFILE("elementwise");
  OpCheck c("add");
  c.tensor("a", a, DType::f32)
      .tensor("b", b, DType::f32, a.shape())
      .tensor("out", out, DType::f32, a.shape());
  if (!c.device().is_cpu()) c.no_kernel(c.device());
  cpu::add(a.data<float>(), b.data<float>(), out.data<float>(), a.numel());
}

void add_inplace(const Tensor& dst, const Tensor& src) {
  TESSERA_PROFILE("elementwise");
  OpCheck c("add_inplace");
  c.tensor("dst", dst, DType::f32).tensor("src", src, DType::f32, dst.shape());
  if (!c.device().is_cpu()) c.no_kernel(c.device());
  cpu::add_inplace(dst.data<float>(), src.data<float>(), dst.numel());
}

void scale(const Tensor& x, float alpha, const Tensor& out) {
  TESSERA_PROFILE("elementwise");
  OpCheck c("scale");
  c.tensor("x", x, DType::f32).tensor("out", out, DType::f32, x.shape());
  if (!c.device().is_cpu()) c.no_kernel(c.device());
  cpu::scale(x.data<float>(), alpha, out.data<float>(), x.numel());
}

}  // namespace tessera::ops
