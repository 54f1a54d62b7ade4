#include "train/synthetic_data.h"

#include <cmath>

#include "core/philox.h"
#include "core/random.h"

namespace tessera::train {
namespace {

// Philox streams, one per kind of draw, so draws never collide.
enum Stream : uint64_t { kSample = 1, kPrototype = 2, kNoise = 3, kCaption = 4 };

uint32_t draw(uint64_t seed, Stream stream, uint64_t index, int word = 0) {
  return philox_block(seed, stream, index).v[word];
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
    : config_(config), seed_(config.train().seed()) {
  const ImageShape s = image_shape(config.model());
  if (s.size > 0) {
    prototypes_ = Tensor::empty({s.classes, s.size, s.size, s.channels}, DType::f32);
    fill_normal(prototypes_, seed_, kPrototype, 0.0f, 1.0f);
  }
}

Tensor SyntheticData::images(const Tensor& classes, int64_t first, float noise) const {
  const int64_t B = classes.numel(), pixels = prototypes_.numel() / prototypes_.dim(0);
  Shape shape = prototypes_.shape();
  shape[0] = B;
  Tensor out = Tensor::empty(shape, DType::f32);
  const bool squash = config_.model().has_dit();
  for (int64_t b = 0; b < B; ++b) {
    Tensor image = out.slice(b, b + 1);
    float* o = image.data<float>();
    // Noise keyed by the sample's global position: its own Philox stream.
    if (noise > 0)
      fill_normal(image, seed_, (uint64_t(kNoise) << 48) ^ uint64_t(first + b), 0.0f, noise);
    const float* proto = prototypes_.data<float>() + classes.data<int32_t>()[b] * pixels;
    for (int64_t i = 0; i < pixels; ++i) {
      const float v = proto[i] + (noise > 0 ? o[i] : 0.0f);
      o[i] = squash ? std::tanh(v) : v;
    }
  }
  return out;
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
  batch["images"] = images(classes, first, m.has_dit() ? 0.0f : 0.5f);
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
