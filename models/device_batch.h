#pragma once
// Batches for a model on a device. The loader and tools hand models host tensors; the trainer on
// a CUDA device uploads its batches itself (pinned, ahead of the step) and passes device
// tensors. A model accepts either: each forward moves the batch tensors it computes with to its
// parameters' device with on_device(), which is a no-op for tensors already there. So the only
// host -> device copies in a model's step are these (visible at the model's entry points) and
// the few host-built index tensors each model documents (positions, pooled rows, DiT's draws).

#include "core/tensor.h"

namespace tessera::models {

// t itself when it already lives on `device`, else a copy there (synchronous).
inline Tensor on_device(const Tensor& t, Device device) {
  return t.device() == device ? t : to_device(t, device);
}

// A one-element f32 tensor's value on the host (the losses a model returns): one read-back.
inline float host_scalar(const Tensor& t) {
  const Tensor h = on_device(t, Device::cpu());
  return h.data<float>()[0];
}

}  // namespace tessera::models
