#pragma once
// Internal to the AdamW launchers (CPU and CUDA): the per-step scalars of one update, computed
// once on the host in double (as PyTorch does with Python floats) and rounded to float, which is
// what PyTorch's f32 kernels use too. One definition, so both devices apply the same update.

#include <cmath>
#include <cstdint>

#include "ops/adamw.h"

namespace tessera::ops {

struct AdamWCoeffs {
  float grad_scale, beta1, one_minus_beta1, beta2, one_minus_beta2;
  float decay_keep;    // 1 - lr * weight_decay
  float step_size;     // lr / (1 - beta1^step)
  float inv_bc2_sqrt;  // 1 / sqrt(1 - beta2^step)
  float eps;
};

inline AdamWCoeffs adamw_coeffs(const AdamWConfig& cfg, int64_t step) {
  const double bc1 = 1.0 - std::pow(double(cfg.beta1), double(step));
  const double bc2 = 1.0 - std::pow(double(cfg.beta2), double(step));
  return {cfg.grad_scale,
          cfg.beta1,
          1.0f - cfg.beta1,
          cfg.beta2,
          1.0f - cfg.beta2,
          float(1.0 - double(cfg.lr) * double(cfg.weight_decay)),
          float(double(cfg.lr) / bc1),
          float(1.0 / std::sqrt(bc2)),
          cfg.eps};
}

}  // namespace tessera::ops
