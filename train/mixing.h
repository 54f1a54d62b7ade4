#pragma once
// Mixup and CutMix with soft targets for ViT training batches (data.mixup_alpha,
// data.cutmix_alpha, data.mix_prob; docs/RECIPES.md).
//
// Pairs: the samples at stream positions 2k and 2k+1 mix with each other. The data sources shuffle
// positions per epoch, so a pair is two random samples, different every epoch; and because the
// pair and its random draw are functions of (train.seed, 2k) only, a sample's mixed image and
// targets never depend on how many ranks or micro-batches share the step (a rank's slice must
// start at an even position and hold an even count: the trainer's slices of an even per-rank
// micro-batch do).
//
// Per pair, from Philox stream kMixStream keyed by (seed, k): mixed at all with probability
// mix_prob; CutMix or mixup (CutMix with probability 1/2 when both alphas are on); lambda ~
// Beta(alpha, alpha). Mixup (timm's "pair" mode): x_a' = lam x_a + (1 - lam) x_b and
// x_b' = lam x_b + (1 - lam) x_a, each keeping weight lam on its own label. CutMix (timm's
// rand_bbox): a box of side int(S sqrt(1 - lam)) centred at a uniform pixel, clipped to the image;
// each image takes the box from its partner, and lam becomes 1 - box area / S^2.
// Result: "labels_mix" = the partner's label, "label_weight" = lam (models/vit.h).

#include <cstdint>

#include "models/model.h"
#include "proto/config.pb.h"

namespace tessera::train {

inline constexpr uint64_t kMixStream = 0x6d69787570ull;  // "mixup"

struct MixDraw {
  enum Kind { kNone, kMixup, kCutMix };
  Kind kind = kNone;
  float lam = 1;  // the weight each image keeps on its own label (after the box)
  int y0 = 0, y1 = 0, x0 = 0, x1 = 0;  // CutMix: rows [y0, y1) x columns [x0, x1)
  int cy = 0, cx = 0;                  // CutMix: the box's centre as drawn (before clipping)
  float lam_drawn = 1;                 // lambda as drawn from the Beta distribution
};

bool mixing_enabled(const config::DataConfig& data);

// The draw of pair k (positions 2k, 2k+1) for images of side S.
MixDraw draw_mix(const config::DataConfig& data, uint64_t seed, int64_t pair, int image_size);

// A Beta(alpha, alpha) sample from Philox stream `stream`, block range starting at `block`
// (Marsaglia-Tsang gamma variates); in [0, 1].
float beta_sample(float alpha, uint64_t seed, uint64_t stream, uint64_t block);

// The CutMix box of lambda `lam` centred at (cy, cx) in an S x S image, as MixDraw's fields.
void cutmix_box(float lam, int cy, int cx, int S, MixDraw& draw);

// Mixes the host batch of positions [first, first + B) in place: "images" (B, S, S, C) f32 and
// "labels" (B) i32 stay, the images mixed; adds "labels_mix" and "label_weight". Throws naming
// the position when first or B is odd.
void mix_batch(const config::DataConfig& data, uint64_t seed, int64_t first, models::Batch& batch);

}  // namespace tessera::train
