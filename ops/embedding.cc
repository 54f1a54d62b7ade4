// Adapters for ops/embedding.h: check dtypes, shapes and devices, then dispatch. Id values are
// checked by the launcher, which reads them anyway.
#include "ops/embedding.h"

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/embedding.h"

namespace tessera::ops {

void embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out) {
  TESSERA_PROFILE("embedding");
  OpCheck c("embedding_forward");
  c.tensor_ndim("ids", ids, DType::i32, 1).tensor_ndim("table", table, DType::f32, 2);
  const int64_t n = ids.dim(0), v = table.dim(0), cols = table.dim(1);
  c.tensor("out", out, DType::f32, {n, cols});
  if (!c.device().is_cpu()) c.no_kernel(c.device());
  cpu::embedding_forward(ids.data<int32_t>(), table.data<float>(), out.data<float>(), n, v, cols);
}

void embedding_backward(const Tensor& dout, const Tensor& ids, const Tensor& dtable) {
  TESSERA_PROFILE("embedding");
  OpCheck c("embedding_backward");
  c.tensor_ndim("ids", ids, DType::i32, 1).tensor_ndim("dtable", dtable, DType::f32, 2);
  const int64_t n = ids.dim(0), v = dtable.dim(0), cols = dtable.dim(1);
  c.tensor("dout", dout, DType::f32, {n, cols});
  if (!c.device().is_cpu()) c.no_kernel(c.device());
  cpu::embedding_backward(dout.data<float>(), ids.data<int32_t>(), dtable.data<float>(), n, v,
                          cols);
}

}  // namespace tessera::ops
