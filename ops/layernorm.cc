// Adapters for ops/layernorm.h: check dtypes, shapes and devices, then dispatch.
#include "ops/layernorm.h"

#include "absl/strings/str_cat.h"
#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/layernorm.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/layernorm.cuh"
#endif

namespace tessera::ops {
namespace {

// Rows and columns of x; checks the per-row statistics hold one value per row.
struct Rows {
  int64_t n = 0, c = 0;
};

Rows check_rows(const OpCheck& c, const Tensor& x, const Tensor& mean, const Tensor& rstd) {
  c.tensor("x", x, DType::f32);
  c.expect(x.ndim() >= 1, absl::StrCat("x must have at least 1 dimension, got ", x.describe()));
  Rows r;
  r.c = x.dim(-1);
  r.n = r.c > 0 ? x.numel() / r.c : 0;
  c.tensor("mean", mean, DType::f32).tensor("rstd", rstd, DType::f32);
  c.expect(mean.numel() == r.n, absl::StrCat("mean must hold ", r.n, " values (one per row of x ",
                                             x.describe(), "), got ", mean.describe()));
  c.expect(rstd.numel() == r.n, absl::StrCat("rstd must hold ", r.n, " values (one per row of x ",
                                             x.describe(), "), got ", rstd.describe()));
  return r;
}

}  // namespace

void layernorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y,
                       const Tensor& mean, const Tensor& rstd, float eps) {
  TESSERA_PROFILE("layernorm");
  OpCheck c("layernorm_forward");
  const Rows r = check_rows(c, x, mean, rstd);
  c.tensor("weight", weight, DType::f32, {r.c})
      .tensor("bias", bias, DType::f32, {r.c})
      .tensor("y", y, DType::f32, x.shape())
      .expect(eps >= 0, absl::StrCat("eps must be >= 0, got ", eps));
  if (c.device().is_cpu()) {
    cpu::layernorm_forward(x.data<float>(), weight.data<float>(), bias.data<float>(),
                           y.data<float>(), mean.data<float>(), rstd.data<float>(), r.n, r.c, eps);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::layernorm_forward(x.data<float>(), weight.data<float>(), bias.data<float>(),
                                   y.data<float>(), mean.data<float>(), rstd.data<float>(), r.n,
                                   r.c, eps, stream_for(c)));
  }
}

void layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
                        const Tensor& rstd, const Tensor& dx, const Tensor& dweight,
                        const Tensor& dbias) {
  TESSERA_PROFILE("layernorm");
  OpCheck c("layernorm_backward");
  const Rows r = check_rows(c, x, mean, rstd);
  c.tensor("dy", dy, DType::f32, x.shape())
      .tensor("weight", weight, DType::f32, {r.c})
      .tensor("dx", dx, DType::f32, x.shape())
      .tensor("dweight", dweight, DType::f32, {r.c})
      .tensor("dbias", dbias, DType::f32, {r.c});
  if (c.device().is_cpu()) {
    cpu::layernorm_backward(dy.data<float>(), x.data<float>(), weight.data<float>(),
                            mean.data<float>(), rstd.data<float>(), dx.data<float>(),
                            dweight.data<float>(), dbias.data<float>(), r.n, r.c);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::layernorm_backward(dy.data<float>(), x.data<float>(), weight.data<float>(),
                                    mean.data<float>(), rstd.data<float>(), dx.data<float>(),
                                    dweight.data<float>(), dbias.data<float>(), r.n, r.c,
                                    stream_for(c)));
  }
}

}  // namespace tessera::ops
