#pragma once
// AdamW on the flat parameter buffer (docs/DESIGN.md decision 3): the moments are two more flat
// buffers of the same layout, the weight-decay rule a u8 mask built once from the parameter
// groups. A step clips by the global gradient norm (fused into the update as a gradient scale)
// and refuses non-finite gradients.

#include <cstdint>

#include "models/param_store.h"
#include "ops/adamw.h"
#include "proto/config.pb.h"

namespace tessera::train {

struct StepStats {
  double grad_norm = 0;  // global L2 norm before clipping
  bool applied = false;  // false when the gradients were not finite (nothing changed)
};

// The fused kernel's settings for one step at `lr`, with global-norm clipping folded in as a
// gradient scale (grad_clip / norm when the norm exceeds optim.grad_clip). Shared by AdamW and
// ZeroAdamW so both clip and update identically.
ops::AdamWConfig adamw_step_config(const config::OptimConfig& optim, double lr, double grad_norm);

class AdamW {
 public:
  AdamW(models::ParamStore& store, const config::OptimConfig& config);

  // One update with learning rate `lr`; increments the step counter only when applied.
  StepStats step(double lr);
  int64_t steps_taken() const { return step_; }
  void set_steps_taken(int64_t n) { step_ = n; }  // restoring a checkpoint

  const Tensor& m() const { return m_; }  // (N) first moments
  const Tensor& v() const { return v_; }  // (N) second moments
  // Bytes of optimizer state (m, v, mask).
  int64_t state_bytes() const;

 private:
  models::ParamStore& store_;
  config::OptimConfig config_;
  Tensor m_, v_, decay_mask_;
  int64_t step_ = 0;
};

}  // namespace tessera::train
