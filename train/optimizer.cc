#include "train/optimizer.h"

#include <cmath>

#include "models/layers/tensor_parallel.h"
#include "ops/adamw.h"
#include "ops/reduce.h"
#include "train/zero_optimizer.h"

namespace tessera::train {

std::unique_ptr<Optimizer> make_optimizer(models::ParamStore& store, const config::Config& config,
                                          const distributed::ParallelLayout& layout) {
  const int stage = config.parallel().zero_stage();
  if (stage >= 1 && stage <= 3 && layout.dp_size() > 1) {
    return std::make_unique<ZeroAdamW>(store, config.optim(), layout.dp(),
                                       config.parallel().bucket_bytes(), stage);
  }
  return std::make_unique<AdamW>(store, config.optim());
}

AdamW::AdamW(models::ParamStore& store, const config::OptimConfig& config)
    : store_(store), config_(config) {
  TESSERA_CHECK(store.finalized(), "AdamW: the parameter store is not finalized");
  const Device device = store.device();
  // State for the trainable parameters only (frozen ones lie behind them: train/freeze.h).
  m_ = Tensor::zeros({store.trainable_numel()}, DType::f32, device);
  v_ = Tensor::zeros({store.trainable_numel()}, DType::f32, device);
  decay_mask_ = store.decay_mask(config.decay_norms_and_biases(), config.decay_embeddings());
  lr_ranges_ = lr_ranges(layer_lr_scales(config, store), store);
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

// Every rank needs the whole averaged gradient: it updates every parameter.
std::unique_ptr<distributed::GradSync> AdamW::make_grad_sync(distributed::Communicator& dp,
                                                             int64_t bucket_bytes) {
  return std::make_unique<distributed::GradSync>(dp, store_.grads(), bucket_bytes);
}

StepStats AdamW::step(double lr) {
  StepStats stats;
  // Tensor parallel: the norm of the unsplit gradient (identical on every TP rank).
  stats.grad_norm = models::tp_grad_l2_norm(store_);
  if (!std::isfinite(stats.grad_norm)) return stats;
  const ops::AdamWConfig c = adamw_step_config(config_, lr, stats.grad_norm);
  const int64_t t = count_step();
  // One update per run of equal learning rate (one run unless optim.layer_decay is set).
  const Tensor params = store_.trainable_params();
  for (const LrRange& r : lr_ranges_) {
    ops::AdamWConfig cr = c;
    cr.lr = static_cast<float>(lr * r.scale);
    const Shape n{r.end - r.begin};
    ops::adamw_step(params.flat_view(r.begin, n), store_.grads().flat_view(r.begin, n),
                    m_.flat_view(r.begin, n), v_.flat_view(r.begin, n),
                    decay_mask_.flat_view(r.begin, n), cr, t);
  }
  store_.sync_compute_params();
  stats.applied = true;
  return stats;
}

int64_t AdamW::state_bytes() const {
  return static_cast<int64_t>(m_.nbytes() + v_.nbytes() + decay_mask_.nbytes());
}

}  // namespace tessera::train
