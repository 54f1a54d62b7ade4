#pragma once
// Image augmentation for training: random resized crop + horizontal flip + normalise, from an
// (H, W, 3) uint8 image to an (S, S, 3) f32 one. All randomness is drawn from Philox keyed by
// (seed, epoch, sample id) (docs/DESIGN.md decision 5), never from a thread-local generator: a
// resumed run, or a run with another number of loader threads or ranks, produces the same
// pixels for the same sample in the same epoch.
//
// The crop follows torchvision's RandomResizedCrop (area fraction uniform in [scale_min,
// scale_max], log aspect ratio uniform in [log ratio_min, log ratio_max], 10 attempts, then a
// centre crop with the ratio clamped). Resizing is bilinear with half-pixel centres
// (align_corners=False) and no antialiasing filter: tessera's data is packed near the training
// resolution, so crops are rarely shrunk by more than ~2x.

#include <cstdint>

namespace tessera::data {

struct AugmentConfig {
  int out_size = 0;         // S
  bool random_crop = true;  // false: the centre square (evaluation), no flip
  float scale_min = 0.08f, scale_max = 1.0f;
  float ratio_min = 3.0f / 4.0f, ratio_max = 4.0f / 3.0f;
  bool flip = true;  // horizontal flip with probability 1/2 (only with random_crop)
  // Normalisation: out = (pixel / 255 - mean[c]) / std[c]. Defaults: CLIP's image statistics.
  float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
};

// Identity of one draw: the sample's global id (its position in manifest order: the sizes of
// earlier shards plus its row, not its position in the epoch's shuffle) in one epoch.
struct AugmentKey {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t sample = 0;
};

// The region of the source image that becomes the output, and whether it is mirrored.
struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
  bool flip = false;
  friend bool operator==(const CropBox&, const CropBox&) = default;
};

// The crop for one sample of an H x W image (a pure function of the key and config).
CropBox sample_crop(int height, int width, const AugmentConfig& config, const AugmentKey& key);

// Deterministic part: crop `box` out of `image` (H, W, 3) uint8, resize bilinearly to (S, S),
// mirror if box.flip, normalise, write `out` (S, S, 3) f32.
void crop_resize_normalise(const uint8_t* image, int height, int width, const CropBox& box,
                           const AugmentConfig& config, float* out);

// Normalisation alone, for images already at the output size: out[i] = in[i] * scale[c] +
// bias[c] over `pixels` RGB pixels (c = channel). With scale = 1 / (255 std), bias = -mean / std
// this is AugmentConfig's normalisation.
void normalise_pixels(const uint8_t* in, int64_t pixels, const float scale[3], const float bias[3],
                      float* out);

// Both: sample_crop then crop_resize_normalise. Throws tessera::Error naming the sample on a bad
// image size or config.
void augment_image(const uint8_t* image, int height, int width, const AugmentConfig& config,
                   const AugmentKey& key, float* out);

}  // namespace tessera::data
