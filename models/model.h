#pragma once
// The interface the trainer drives. A model owns its ParamStore (flat parameters and gradients)
// and its layers; forward_backward runs one micro-batch through forward, the loss and backward,
// accumulating parameter gradients.

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/param_store.h"

namespace tessera::models {

// A micro-batch: named tensors on the host or on the model's parameter device (the model copies
// host tensors to its device itself: models/device_batch.h). Which names a model reads is part of
// its documentation (e.g. GPT: "tokens" (B, T) i32 and "targets" (B, T) i32).
using Batch = std::map<std::string, Tensor>;

struct LossResult {
  double loss = 0;    // the mean loss of the micro-batch
  int64_t count = 0;  // samples (or tokens) it averaged over
};

class Model {
 public:
  virtual ~Model() = default;

  virtual ParamStore& params() = 0;
  // Where the parameters, gradients and activations live (make_model's device).
  Device device() { return params().device(); }

  // Batch tensors this model reads on the host (indices it checks, keys of its random draws):
  // a trainer on a GPU passes them through instead of uploading them (core/upload.h).
  virtual std::vector<std::string> host_inputs() const { return {}; }

  // Seed of the model's own keyed random draws (DiT's timesteps, noise and label drop); models
  // without any ignore it. The trainer passes train.seed.
  virtual void set_seed(uint64_t seed) {}

  // Forward, loss, and backward with d(loss) = loss_scale (1 / micro_batches for accumulation).
  // Parameter gradients ACCUMULATE into params().grads().
  virtual LossResult forward_backward(const Batch& batch, float loss_scale) = 0;

  // Forward and loss only (evaluation); saves nothing for backward.
  virtual LossResult forward_loss(const Batch& batch) = 0;

  // Model FLOPs of one forward+backward of `batch_size` samples (6·N·tokens + attention), the
  // numerator of MFU.
  virtual double train_flops(int64_t batch_size) const = 0;

  // Estimated bytes of activations kept for backward (plus the largest transient) for one
  // micro-batch of `batch_size` samples; -1 when the model gives no estimate. The trainer
  // prints it next to the parameter, gradient and optimizer bytes and the measured peak RSS.
  virtual int64_t activation_bytes(int64_t batch_size) const { return -1; }
};

}  // namespace tessera::models
