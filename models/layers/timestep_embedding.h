#pragma once
// DiT's TimestepEmbedder: the integer diffusion step t -> sinusoidal frequency embedding (256,
// [cos | sin] halves, max period 10000, as DiT's timestep_embedding) -> Linear(256 -> d) -> SiLU
// -> Linear(d -> d). The frequency embedding is a function of t alone: computed on the host in
// double, it is an input, not an activation with a gradient.

#include <string>

#include "models/layers/linear.h"

namespace tessera::models {

class TimestepEmbedding {
 public:
  static constexpr int64_t kFreqDim = 256;

  // Both weights normal(0.02), as DiT's initialize_weights; biases zero.
  TimestepEmbedding(ParamStore& store, const std::string& name, int64_t dim);

  // (B, kFreqDim) f32 on the host: [cos(t w_i) | sin(t w_i)], w_i = 10000^(-i / 128).
  // timesteps (B) i32 on any device (read on the host).
  static Tensor frequencies(const Tensor& timesteps);

  // timesteps (B) i32 (host, or copied there) -> (B, d) on `device`, the parameters' device.
  Tensor forward(const Tensor& timesteps, Device device);
  // Contract: parameter grads ACCUMULATE; t has no gradient.
  void backward(const Tensor& dy);  // dy (B, d)

 private:
  Linear fc1_, fc2_;
  Tensor pre_;  // saved fc1 output, the SiLU input (B, d)
};

}  // namespace tessera::models
