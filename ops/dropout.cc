// Adapter for ops/dropout.h: check dtypes, shapes, devices and rates, then dispatch.
#include "ops/dropout.h"

#include "core/timer.h"
#include "ops/cpu/dropout.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/dropout.cuh"
#endif

namespace tessera::ops {

void keyed_dropout(const Tensor& x, const Tensor& out, float p, float path_p,
                   const DropoutKey& key) {
  TESSERA_PROFILE("elementwise");
  OpCheck c("keyed_dropout");
  c.tensor("x", x, DType::f32).tensor("out", out, DType::f32, x.shape());
  c.expect(x.ndim() >= 1, "x has a row dimension");
  c.expect(p >= 0 && p < 1 && path_p >= 0 && path_p < 1, "rates p and path_p in [0, 1)");
  c.expect(key.first >= 0, "the first row's position >= 0");
  const int64_t rows = x.dim(0), n = rows > 0 ? x.numel() / rows : 0;
  if (c.device().is_cpu()) {
    cpu::keyed_dropout(x.data<float>(), out.data<float>(), rows, n, p, path_p, key);
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda::keyed_dropout(x.data<float>(), out.data<float>(), rows, n, p,
                                               path_p, key, stream_for(c)));
  }
}

}  // namespace tessera::ops
