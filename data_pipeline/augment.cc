#include "data_pipeline/augment.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/philox.h"

namespace tessera::data {
namespace {

// Augmentation draws use their own key derived from the seed, so they are independent of the
// sampler's shuffles and of weight init under the same seed.
constexpr uint64_t kAugmentDomain = 0x4155474d454e5421ull;  // "AUGMENT!"
// Counter blocks per sample: 10 crop attempts, then the flip.
constexpr uint64_t kBlocksPerSample = 16;
constexpr int kAttempts = 10;

uint64_t derive_key(uint64_t seed) {
  Philox4x32 r = philox_block(seed, kAugmentDomain, 0);
  return uint64_t(r.v[0]) | (uint64_t(r.v[1]) << 32);
}

// Uniform integer in [0, n) from 32 random bits (multiply-shift; bias <= n / 2^32).
int uniform_below(uint32_t bits, int n) {
  return int((uint64_t(bits) * uint64_t(n)) >> 32);
}

// One axis of the bilinear resize: output i of `out` samples source coordinate
// (i + 0.5) * in / out - 0.5 (half-pixel centres), clamped to the crop, so the crop's edge
// pixels are repeated rather than its neighbours leaking in.
struct Tap {
  int i0, i1;
  float w1;  // weight of i1; i0 gets 1 - w1
};
std::vector<Tap> taps(int offset, int in, int out) {
  std::vector<Tap> t(static_cast<size_t>(out));
  const double scale = double(in) / double(out);
  for (int i = 0; i < out; ++i) {
    double f = std::clamp((i + 0.5) * scale - 0.5, 0.0, double(in - 1));
    int i0 = int(std::floor(f));
    int i1 = std::min(i0 + 1, in - 1);
    t[size_t(i)] = Tap{offset + i0, offset + i1, float(f - i0)};
  }
  return t;
}

}  // namespace

CropBox sample_crop(int height, int width, const AugmentConfig& c, const AugmentKey& key) {
  TESSERA_CHECK(height > 0 && width > 0, "augment: sample ", key.sample, " has an empty image (",
                height, "x", width, ")");
  if (!c.random_crop) {
    const int s = std::min(height, width);
    return CropBox{(height - s) / 2, (width - s) / 2, s, s, false};
  }
  TESSERA_CHECK(key.epoch >= 0, "augment: epoch ", key.epoch, " is negative");
  TESSERA_CHECK(key.sample >= 0 && uint64_t(key.sample) < (uint64_t(1) << 59),
                "augment: sample id ", key.sample, " is outside [0, 2^59)");
  TESSERA_CHECK(0 < c.scale_min && c.scale_min <= c.scale_max && c.scale_max <= 1,
                "augment: scale range [", c.scale_min, ", ", c.scale_max,
                "] must lie in (0, 1] and be ordered");
  TESSERA_CHECK(0 < c.ratio_min && c.ratio_min <= c.ratio_max, "augment: ratio range [",
                c.ratio_min, ", ", c.ratio_max, "] must be positive and ordered");
  const uint64_t k = derive_key(key.seed);
  const uint64_t stream = uint64_t(key.epoch);
  const uint64_t base = uint64_t(key.sample) * kBlocksPerSample;
  const double area = double(height) * double(width);
  const double log_lo = std::log(double(c.ratio_min)), log_hi = std::log(double(c.ratio_max));
  CropBox box;
  bool found = false;
  for (int attempt = 0; attempt < kAttempts && !found; ++attempt) {
    const Philox4x32 r = philox_block(k, stream, base + uint64_t(attempt));
    const double target =
        area * (c.scale_min + philox_uniform(r.v[0]) * (c.scale_max - c.scale_min));
    const double aspect = std::exp(log_lo + philox_uniform(r.v[1]) * (log_hi - log_lo));
    const int w = int(std::lround(std::sqrt(target * aspect)));
    const int h = int(std::lround(std::sqrt(target / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      box = CropBox{uniform_below(r.v[2], height - h + 1), uniform_below(r.v[3], width - w + 1), h,
                    w, false};
      found = true;
    }
  }
  if (!found) {  // torchvision's fallback: the largest centred crop with the ratio clamped
    const double in_ratio = double(width) / double(height);
    int w = width, h = height;
    if (in_ratio < c.ratio_min) {
      h = std::max(1, int(std::lround(w / double(c.ratio_min))));
    } else if (in_ratio > c.ratio_max) {
      w = std::max(1, int(std::lround(h * double(c.ratio_max))));
    }
    box = CropBox{(height - h) / 2, (width - w) / 2, h, w, false};
  }
  const Philox4x32 f = philox_block(k, stream, base + kAttempts);
  box.flip = c.flip && (f.v[0] & 1u);
  return box;
}

void crop_resize_normalise(const uint8_t* image, int height, int width, const CropBox& box,
                           const AugmentConfig& c, float* out) {
  const int S = c.out_size;
  TESSERA_CHECK(S > 0, "augment: out_size must be positive, got ", S);
  TESSERA_CHECK(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0 &&
                    box.top + box.height <= height && box.left + box.width <= width,
                "augment: crop (top ", box.top, ", left ", box.left, ", ", box.height, "x",
                box.width, ") is outside the ", height, "x", width, " image");
  for (int ch = 0; ch < 3; ++ch)
    TESSERA_CHECK(c.std[ch] > 0, "augment: std[", ch, "] = ", c.std[ch], " must be positive");
  const std::vector<Tap> ys = taps(box.top, box.height, S);
  std::vector<Tap> xs = taps(box.left, box.width, S);
  if (box.flip) std::reverse(xs.begin(), xs.end());  // output column x reads column S-1-x
  float scale[3], bias[3];
  for (int ch = 0; ch < 3; ++ch) {
    scale[ch] = 1.0f / (255.0f * c.std[ch]);
    bias[ch] = -c.mean[ch] / c.std[ch];
  }
  const size_t row = size_t(width) * 3;
  for (int y = 0; y < S; ++y) {
    const Tap ty = ys[size_t(y)];
    const uint8_t* r0 = image + size_t(ty.i0) * row;
    const uint8_t* r1 = image + size_t(ty.i1) * row;
    float* o = out + size_t(y) * size_t(S) * 3;
    for (int x = 0; x < S; ++x) {
      const Tap tx = xs[size_t(x)];
      for (int ch = 0; ch < 3; ++ch) {
        const float a =
            r0[tx.i0 * 3 + ch] + tx.w1 * (float(r0[tx.i1 * 3 + ch]) - r0[tx.i0 * 3 + ch]);
        const float b =
            r1[tx.i0 * 3 + ch] + tx.w1 * (float(r1[tx.i1 * 3 + ch]) - r1[tx.i0 * 3 + ch]);
        o[x * 3 + ch] = (a + ty.w1 * (b - a)) * scale[ch] + bias[ch];
      }
    }
  }
}

void augment_image(const uint8_t* image, int height, int width, const AugmentConfig& config,
                   const AugmentKey& key, float* out) {
  crop_resize_normalise(image, height, width, sample_crop(height, width, config, key), config, out);
}

void normalise_pixels(const uint8_t* in, int64_t pixels, const float scale[3], const float bias[3],
                      float* out) {
  const float s0 = scale[0], s1 = scale[1], s2 = scale[2];
  const float b0 = bias[0], b1 = bias[1], b2 = bias[2];
  // Runs of 16 pixels (48 values, a whole number of 4-float vectors) with the channel pattern
  // unrolled into tables: the compiler vectorises this; the stride-3 loop below it does not
  // (perf on bench_loader). Same multiply and add per value, so the same results.
  constexpr int kRun = 48;
  float sc[kRun], bc[kRun];
  for (int j = 0; j < kRun; ++j) {
    sc[j] = scale[j % 3];
    bc[j] = bias[j % 3];
  }
  for (; pixels >= kRun / 3; pixels -= kRun / 3, in += kRun, out += kRun)
    for (int j = 0; j < kRun; ++j) out[j] = float(in[j]) * sc[j] + bc[j];
  for (int64_t p = 0; p < pixels; ++p, in += 3, out += 3) {
    out[0] = float(in[0]) * s0 + b0;
    out[1] = float(in[1]) * s1 + b1;
    out[2] = float(in[2]) * s2 + b2;
  }
}

}  // namespace tessera::data
