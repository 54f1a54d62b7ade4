// Adapters for ops/cross_entropy.h: check dtypes, shapes and devices, then dispatch. Target values
// are checked by the launcher, which reads them anyway.
#include "ops/cross_entropy.h"

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/cross_entropy.h"

namespace tessera::ops {

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, const Tensor& loss,
                           const Tensor& lse, int ignore_index) {
  TESSERA_PROFILE("cross_entropy");
  OpCheck c("cross_entropy_forward");
  c.tensor_ndim("logits", logits, DType::f32, 2);
  const int64_t n = logits.dim(0), v = logits.dim(1);
  c.tensor("targets", targets, DType::i32, {n})
      .tensor("loss", loss, DType::f32, {1})
      .tensor("lse", lse, DType::f32, {n});
  if (!c.device().is_cpu()) c.no_kernel(c.device());
  cpu::cross_entropy_forward(logits.data<float>(), targets.data<int32_t>(), loss.data<float>(),
                             lse.data<float>(), n, v, ignore_index);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            float dloss, const Tensor& dlogits, int ignore_index) {
  TESSERA_PROFILE("cross_entropy");
  OpCheck c("cross_entropy_backward");
  c.tensor_ndim("logits", logits, DType::f32, 2);
  const int64_t n = logits.dim(0), v = logits.dim(1);
  c.tensor("targets", targets, DType::i32, {n})
      .tensor("lse", lse, DType::f32, {n})
      .tensor("dlogits", dlogits, DType::f32, logits.shape());
  if (!c.device().is_cpu()) c.no_kernel(c.device());
  cpu::cross_entropy_backward(logits.data<float>(), targets.data<int32_t>(), lse.data<float>(),
                              dloss, dlogits.data<float>(), n, v, ignore_index);
}

}  // namespace tessera::ops
