#include "train/mixing.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/philox.h"

namespace tessera::train {
namespace {

// Draws come from blocks of the pair's own range: block (pair << 8) + i, so pairs never share.
constexpr int kBlocksPerPair = 256;

// Uniforms and normals read off consecutive Philox blocks.
class Draws {
 public:
  Draws(uint64_t seed, uint64_t stream, uint64_t block)
      : seed_(seed), stream_(stream), block_(block) {}
  float uniform() { return philox_uniform(next()); }
  float uniform_open0() { return philox_uniform_open0(next()); }
  float normal() {  // Box-Muller, one of the pair
    const float u1 = uniform_open0(), u2 = uniform();
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853071795864f * u2);
  }

 private:
  uint32_t next() {
    if (i_ == 4) {
      current_ = philox_block(seed_, stream_, block_++);
      i_ = 0;
    }
    return current_.v[i_++];
  }
  uint64_t seed_, stream_, block_;
  Philox4x32 current_{};
  int i_ = 4;
};

// Gamma(a, 1) by Marsaglia and Tsang (2000); a < 1 through Gamma(a + 1) * U^(1/a).
double gamma_sample(double a, Draws& d) {
  const double boost = a < 1 ? std::pow(double(d.uniform_open0()), 1.0 / a) : 1.0;
  if (a < 1) a += 1;
  const double c1 = a - 1.0 / 3.0, c2 = 1.0 / std::sqrt(9.0 * c1);
  for (;;) {
    double x, v;
    do {
      x = d.normal();
      v = 1.0 + c2 * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = d.uniform_open0();
    if (u < 1.0 - 0.0331 * x * x * x * x ||
        std::log(u) < 0.5 * x * x + c1 * (1 - v + std::log(v))) {
      return c1 * v * boost;
    }
  }
}

}  // namespace

bool mixing_enabled(const config::DataConfig& data) {
  return (data.mixup_alpha() > 0 || data.cutmix_alpha() > 0) && data.mix_prob() > 0;
}

float beta_sample(float alpha, uint64_t seed, uint64_t stream, uint64_t block) {
  Draws d(seed, stream, block);
  const double g1 = gamma_sample(alpha, d), g2 = gamma_sample(alpha, d);
  return float(g1 / (g1 + g2));
}

void cutmix_box(float lam, int cy, int cx, int S, MixDraw& draw) {
  const int cut = int(S * std::sqrt(1.0f - lam));  // side of the box before clipping
  draw.cy = cy;
  draw.cx = cx;
  draw.y0 = std::clamp(cy - cut / 2, 0, S);
  draw.y1 = std::clamp(cy + cut / 2, 0, S);
  draw.x0 = std::clamp(cx - cut / 2, 0, S);
  draw.x1 = std::clamp(cx + cut / 2, 0, S);
  draw.lam = 1.0f - float((draw.y1 - draw.y0) * (draw.x1 - draw.x0)) / float(S * S);
}

MixDraw draw_mix(const config::DataConfig& data, uint64_t seed, int64_t pair, int S) {
  MixDraw draw;
  if (!mixing_enabled(data)) return draw;
  // Block 0 of the pair: the decisions and the box centre; blocks 1.. : the Beta variates.
  const uint64_t base = uint64_t(pair) * kBlocksPerPair;
  const Philox4x32 b = philox_block(seed, kMixStream, base);
  if (philox_uniform(b.v[0]) >= data.mix_prob()) return draw;
  const bool both = data.mixup_alpha() > 0 && data.cutmix_alpha() > 0;
  const bool cutmix = both ? philox_uniform(b.v[1]) < 0.5f : data.cutmix_alpha() > 0;
  const float alpha = cutmix ? data.cutmix_alpha() : data.mixup_alpha();
  draw.lam_drawn = beta_sample(alpha, seed, kMixStream, base + 1);
  if (!cutmix) {
    draw.kind = MixDraw::kMixup;
    draw.lam = draw.lam_drawn;
    return draw;
  }
  draw.kind = MixDraw::kCutMix;
  const int cy = std::min(int(philox_uniform(b.v[2]) * S), S - 1);
  const int cx = std::min(int(philox_uniform(b.v[3]) * S), S - 1);
  cutmix_box(draw.lam_drawn, cy, cx, S, draw);
  return draw;
}

void mix_batch(const config::DataConfig& data, uint64_t seed, int64_t first, models::Batch& batch) {
  const Tensor& source = batch.at("images");
  const Tensor& labels = batch.at("labels");
  TESSERA_CHECK(source.ndim() == 4 && source.dtype() == DType::f32 && source.device().is_cpu(),
                "mixup/CutMix: \"images\" must be (B, S, S, C) f32 on the host, got ",
                source.describe());
  // A copy: a data source may hand out tensors it still refers to.
  Tensor images = Tensor::empty(source.shape(), DType::f32);
  std::memcpy(images.data<float>(), source.data<float>(), source.nbytes());
  const int64_t B = images.dim(0), S = images.dim(1), C = images.dim(3);
  TESSERA_CHECK(first % 2 == 0 && B % 2 == 0, "mixup/CutMix (data.mixup_alpha, data.cutmix_alpha) ",
                "mix samples in pairs of positions (2k, 2k+1): a rank's batch of ", B,
                " samples at position ", first,
                " splits a pair; make data.global_batch_size / (data-parallel ranks x "
                "train.micro_batches) even");
  Tensor mix = Tensor::empty({B}, DType::i32), weight = Tensor::empty({B}, DType::f32);
  const int64_t px = S * S * C;
  for (int64_t i = 0; i < B; i += 2) {
    const MixDraw d = draw_mix(data, seed, (first + i) / 2, int(S));
    float* xa = images.data<float>() + i * px;
    float* xb = xa + px;
    const int32_t la = labels.data<int32_t>()[i], lb = labels.data<int32_t>()[i + 1];
    mix.data<int32_t>()[i] = lb;
    mix.data<int32_t>()[i + 1] = la;
    weight.data<float>()[i] = weight.data<float>()[i + 1] = d.lam;
    if (d.kind == MixDraw::kMixup) {
      const float l = d.lam;
      for (int64_t j = 0; j < px; ++j) {
        const float va = xa[j], vb = xb[j];
        xa[j] = l * va + (1 - l) * vb;
        xb[j] = l * vb + (1 - l) * va;
      }
    } else if (d.kind == MixDraw::kCutMix) {
      for (int y = d.y0; y < d.y1; ++y) {
        float* ra = xa + (int64_t(y) * S + d.x0) * C;
        float* rb = xb + (int64_t(y) * S + d.x0) * C;
        for (int64_t j = 0; j < int64_t(d.x1 - d.x0) * C; ++j) std::swap(ra[j], rb[j]);
      }
    }
  }
  batch["images"] = images;
  batch["labels_mix"] = mix;
  batch["label_weight"] = weight;
}

}  // namespace tessera::train
