// Adapter for ops/adamw.h: check dtypes, shapes, device and hyperparameters, then dispatch.
#include "ops/adamw.h"

#include "absl/strings/str_cat.h"
#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/adamw.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/adamw.cuh"
#endif

namespace tessera::ops {

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const Tensor& decay_mask, const AdamWConfig& cfg, int64_t step) {
  TESSERA_PROFILE("adamw");
  OpCheck c("adamw_step");
  c.tensor("param", param, DType::f32)
      .tensor("grad", grad, DType::f32, param.shape())
      .tensor("m", m, DType::f32, param.shape())
      .tensor("v", v, DType::f32, param.shape());
  if (decay_mask.defined()) c.tensor("decay_mask", decay_mask, DType::u8, param.shape());
  c.expect(step >= 1, absl::StrCat("step must be >= 1 (1-based, for bias correction), got ", step))
      .expect(cfg.lr >= 0.0f, absl::StrCat("lr must be >= 0, got ", cfg.lr))
      .expect(cfg.beta1 >= 0.0f && cfg.beta1 < 1.0f,
              absl::StrCat("beta1 must be in [0, 1), got ", cfg.beta1))
      .expect(cfg.beta2 >= 0.0f && cfg.beta2 < 1.0f,
              absl::StrCat("beta2 must be in [0, 1), got ", cfg.beta2))
      .expect(cfg.eps >= 0.0f, absl::StrCat("eps must be >= 0, got ", cfg.eps))
      .expect(cfg.weight_decay >= 0.0f,
              absl::StrCat("weight_decay must be >= 0, got ", cfg.weight_decay));
  const uint8_t* mask = decay_mask.defined() ? decay_mask.data<uint8_t>() : nullptr;
  if (c.device().is_cpu()) {
    cpu::adamw_step(param.data<float>(), grad.data<float>(), m.data<float>(), v.data<float>(), mask,
                    param.numel(), cfg, step);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::adamw_step(param.data<float>(), grad.data<float>(), m.data<float>(),
                            v.data<float>(), mask, param.numel(), cfg, step, stream_for(c)));
  }
}

}  // namespace tessera::ops
