#include "train/synthetic_data.h"

#include <cmath>

#include "core/philox.h"

namespace tessera::train {
namespace {

// Philox streams, one per kind of draw, so draws never collide.
enum Stream : uint64_t { kSample = 1, kPrototype = 2, kNoise = 3, kCaption = 4 };

uint32_t draw(uint64_t seed, Stream stream, uint64_t index, int word = 0) {
  return philox_block(seed, stream, index).v[word];
}

float normal(uint64_t seed, Stream stream, uint64_t index) {
  Philox4x32 r = philox_block(seed, stream, index);
  float radius = std::sqrt(-2.0f * std::log(philox_uniform_open0(r.v[0])));
  return radius * std::cos(6.28318530717958647692f * philox_uniform(r.v[1]));
}

struct ImageShape {
  int64_t size = 0, channels = 0, classes = 0;
};

ImageShape image_shape(const config::ModelConfig& m) {
  switch (m.kind_case()) {
    case config::ModelConfig::kVit:
      return {m.vit().image_size(), m.vit().channels(), m.vit().n_classes()};
    case config::ModelConfig::kClip:
      return {m.clip().image().image_size(), m.clip().image().channels(), 1000};
    case config::ModelConfig::kDit:
      return {m.dit().image_size(), m.dit().channels(), std::max(1, m.dit().n_classes())};
    default:
      return {};
  }
}

}  // namespace

SyntheticData::SyntheticData(const config::Config& config)
    : config_(config), seed_(config.train().seed()) {}

Tensor SyntheticData::prototype_images(const Tensor& classes, int64_t first, float noise) const {
  const ImageShape s = image_shape(config_.model());
  const int64_t B = classes.numel(), pixels = s.size * s.size * s.channels;
  Tensor images = Tensor::empty({B, s.size, s.size, s.channels}, DType::f32);
  float* out = images.data<float>();
  const bool squash = config_.model().has_dit();
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t c = uint64_t(classes.data<int32_t>()[b]);
    for (int64_t i = 0; i < pixels; ++i) {
      float v = normal(seed_, kPrototype, c * uint64_t(pixels) + uint64_t(i));
      if (noise > 0) v += noise * normal(seed_, kNoise, uint64_t(first + b) * pixels + i);
      out[b * pixels + i] = squash ? std::tanh(v) : v;
    }
  }
  return images;
}

models::Batch SyntheticData::batch(int64_t first, int64_t count) const {
  const auto& m = config_.model();
  models::Batch batch;
  if (m.has_gpt()) {
    const int64_t T = m.gpt().context(), V = m.gpt().vocab_size();
    Tensor tokens = Tensor::empty({count, T}, DType::i32),
           targets = Tensor::empty({count, T}, DType::i32);
    for (int64_t b = 0; b < count; ++b) {
      const uint64_t p = uint64_t(first + b);
      const int64_t start = draw(seed_, kSample, p, 0) % uint32_t(V);
      const int64_t stride = 1 + draw(seed_, kSample, p, 1) % 7u;
      for (int64_t t = 0; t < T; ++t) {
        tokens.data<int32_t>()[b * T + t] = int32_t((start + stride * t) % V);
        targets.data<int32_t>()[b * T + t] = int32_t((start + stride * (t + 1)) % V);
      }
    }
    batch["tokens"] = tokens;
    batch["targets"] = targets;
    return batch;
  }
  const ImageShape s = image_shape(m);
  Tensor classes = Tensor::empty({count}, DType::i32);
  for (int64_t b = 0; b < count; ++b) {
    classes.data<int32_t>()[b] =
        int32_t(draw(seed_, kSample, uint64_t(first + b), 2) % uint32_t(s.classes));
  }
  batch["images"] = prototype_images(classes, first, m.has_dit() ? 0.0f : 0.5f);
  if (m.has_vit() || m.has_dit()) batch["labels"] = classes;
  if (m.has_dit()) {
    Tensor keys = Tensor::empty({count}, DType::i64);
    for (int64_t b = 0; b < count; ++b) keys.data<int64_t>()[b] = first + b;
    batch["sample_keys"] = keys;
  }
  if (m.has_clip()) {
    const int64_t L = m.clip().text().context(), V = m.clip().text().vocab_size();
    Tensor text = Tensor::zeros({count, L}, DType::i32), eot = Tensor::empty({count}, DType::i32);
    for (int64_t b = 0; b < count; ++b) {
      const uint64_t c = uint64_t(classes.data<int32_t>()[b]);
      // A caption of 4..L-1 tokens fixed per class, then the end-of-text token V-1.
      const int64_t len = 4 + draw(seed_, kCaption, c, 3) % uint32_t(std::max<int64_t>(1, L - 4));
      for (int64_t t = 0; t < len && t < L - 1; ++t) {
        text.data<int32_t>()[b * L + t] =
            int32_t(draw(seed_, kCaption, c * L + t, 0) % uint32_t(V - 1));
      }
      const int64_t e = std::min<int64_t>(len, L - 1);
      text.data<int32_t>()[b * L + e] = int32_t(V - 1);
      eot.data<int32_t>()[b] = int32_t(e);
    }
    batch["text"] = text;
    batch["text_eot"] = eot;
  }
  return batch;
}

}  // namespace tessera::train
