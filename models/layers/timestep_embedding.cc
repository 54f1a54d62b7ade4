#include "models/layers/timestep_embedding.h"

#include <cmath>

#include "models/device_batch.h"
#include "ops/activation.h"

namespace tessera::models {

TimestepEmbedding::TimestepEmbedding(ParamStore& store, const std::string& name, int64_t dim)
    : fc1_(store, name + ".fc1", kFreqDim, dim, true, Init::normal(0.02f)),
      fc2_(store, name + ".fc2", dim, dim, true, Init::normal(0.02f)) {}

Tensor TimestepEmbedding::frequencies(const Tensor& timesteps_in) {
  TESSERA_CHECK(timesteps_in.dtype() == DType::i32,
                "TimestepEmbedding: timesteps must be i32, got ", timesteps_in.describe());
  // Deliberately on the host, in double: t is an input of the model, not an activation.
  const Tensor timesteps = on_device(timesteps_in, Device::cpu());
  const int64_t B = timesteps.numel(), half = kFreqDim / 2;
  Tensor out = Tensor::empty({B, kFreqDim}, DType::f32);
  for (int64_t b = 0; b < B; ++b) {
    const double t = timesteps.data<int32_t>()[b];
    float* row = out.data<float>() + b * kFreqDim;
    for (int64_t i = 0; i < half; ++i) {
      const double arg = t * std::exp(-std::log(10000.0) * double(i) / double(half));
      row[i] = float(std::cos(arg));
      row[half + i] = float(std::sin(arg));
    }
  }
  return out;
}

Tensor TimestepEmbedding::forward(const Tensor& timesteps, Device device) {
  Tensor freq = frequencies(timesteps);  // (B, 256)
  freq = on_device(freq, device);        // the one upload: (B, 256)
  pre_ = fc1_.forward(freq);             // (B, d)
  Tensor h = Tensor::empty(pre_.shape(), DType::f32, device);
  ops::silu_forward(pre_, h);
  return fc2_.forward(h);  // (B, d)
}

void TimestepEmbedding::backward(const Tensor& dy) {
  Tensor dh = fc2_.backward(dy);
  ops::silu_backward(dh, pre_, dh);  // in place: dh becomes d(pre)
  pre_ = Tensor();
  fc1_.backward(dh, /*need_dx=*/false);
}

}  // namespace tessera::models
