// Adapters for ops/embedding.h: check dtypes, shapes and devices, then dispatch. Id values are
// checked by the CPU launcher, which reads them anyway; for CUDA the adapter copies the ids to the
// host (N ints, a synchronisation) and checks them there with the same message. The CUDA backward
// also uses that host copy to group positions by id (deterministic scatter-add, no atomics).
#include "ops/embedding.h"

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/embedding.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/embedding.cuh"
#endif

namespace tessera::ops {
namespace {

#if TESSERA_WITH_CUDA
// A host copy of device ids, checked as ops/cpu/embedding.cc checks them.
Tensor checked_host_ids(const char* op, const Tensor& ids, int64_t v) {
  Tensor host = to_device(ids, Device::cpu());
  const int32_t* p = host.data<int32_t>();
  for (int64_t i = 0; i < host.numel(); ++i) {
    TESSERA_CHECK(p[i] >= 0 && p[i] < v, op, ": id ", p[i], " at position ", i, " is outside [0, ",
                  v, ")");
  }
  return host;
}
#endif

}  // namespace

void embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out) {
  TESSERA_PROFILE("embedding");
  OpCheck c("embedding_forward");
  c.tensor_ndim("ids", ids, DType::i32, 1).tensor_ndim("table", table, DType::f32, 2);
  const int64_t n = ids.dim(0), v = table.dim(0), cols = table.dim(1);
  c.tensor("out", out, DType::f32, {n, cols});
  if (c.device().is_cpu()) {
    cpu::embedding_forward(ids.data<int32_t>(), table.data<float>(), out.data<float>(), n, v, cols);
  } else {
    TESSERA_CUDA_LAUNCH(c, (checked_host_ids("embedding_forward", ids, v),
                            cuda::embedding_forward(ids.data<int32_t>(), table.data<float>(),
                                                    out.data<float>(), n, v, cols, stream_for(c))));
  }
}

void embedding_backward(const Tensor& dout, const Tensor& ids, const Tensor& dtable) {
  TESSERA_PROFILE("embedding");
  OpCheck c("embedding_backward");
  c.tensor_ndim("ids", ids, DType::i32, 1).tensor_ndim("dtable", dtable, DType::f32, 2);
  const int64_t n = ids.dim(0), v = dtable.dim(0), cols = dtable.dim(1);
  c.tensor("dout", dout, DType::f32, {n, cols});
  if (c.device().is_cpu()) {
    cpu::embedding_backward(dout.data<float>(), ids.data<int32_t>(), dtable.data<float>(), n, v,
                            cols);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::embedding_backward(
               dout.data<float>(), ids.data<int32_t>(), dtable.data<float>(), n, v, cols,
               checked_host_ids("embedding_backward", ids, v).data<int32_t>(), stream_for(c)));
  }
}

}  // namespace tessera::ops
