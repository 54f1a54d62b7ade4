#include "train/optimizer.h"

#include <cmath>

#include "models/layers/tensor_parallel.h"
#include "ops/adamw.h"
#include "ops/reduce.h"

namespace tessera::train {

AdamW::AdamW(models::ParamStore& store, const config::OptimConfig& config)
    : store_(store), config_(config) {
  TESSERA_CHECK(store.finalized(), "AdamW: the parameter store is not finalized");
  const Device device = store.params().device();
  m_ = Tensor::zeros({store.numel()}, DType::f32, device);
  v_ = Tensor::zeros({store.numel()}, DType::f32, device);
  decay_mask_ = store.decay_mask(config.decay_norms_and_biases(), config.decay_embeddings());
}

ops::AdamWConfig adamw_step_config(const config::OptimConfig& optim, double lr, double grad_norm) {
  double scale = 1.0;
  if (optim.grad_clip() > 0 && grad_norm > optim.grad_clip()) {
    scale = optim.grad_clip() / (grad_norm + 1e-6);
  }
  ops::AdamWConfig c;
  c.lr = static_cast<float>(lr);
  c.beta1 = optim.beta1();
  c.beta2 = optim.beta2();
  c.eps = optim.eps();
  c.weight_decay = optim.weight_decay();
  c.grad_scale = static_cast<float>(scale);
  return c;
}

StepStats AdamW::step(double lr) {
  StepStats stats;
  // Tensor parallel: the norm of the unsplit gradient (identical on every TP rank).
  stats.grad_norm = models::tp_grad_l2_norm(store_);
  if (!std::isfinite(stats.grad_norm)) return stats;
  const ops::AdamWConfig c = adamw_step_config(config_, lr, stats.grad_norm);
  ++step_;
  ops::adamw_step(store_.params(), store_.grads(), m_, v_, decay_mask_, c, step_);
  store_.sync_compute_params();
  stats.applied = true;
  return stats;
}

int64_t AdamW::state_bytes() const {
  return static_cast<int64_t>(m_.nbytes() + v_.nbytes() + decay_mask_.nbytes());
}

}  // namespace tessera::train
