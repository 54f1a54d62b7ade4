#pragma once
// Seeded synthetic data with learnable structure, for runs without a dataset (tests, benchmarks,
// the interface check). Every sample is a pure function of (seed, global position in the
// stream), like the real loader's order (docs/DESIGN.md decision 5), so any split of a global batch
// across micro-batches or ranks sees the same samples.
//
//   gpt : arithmetic token sequences (start, stride) mod vocab; predictable after two tokens.
//   vit : one fixed random prototype image per class plus per-sample noise.
//   clip: prototype image of a class and a fixed random caption of that class.
//   dit : class prototype images squashed into [-1, 1].

#include <cstdint>

#include "models/model.h"
#include "proto/config.pb.h"
#include "train/data_source.h"

namespace tessera::train {

class SyntheticData final : public DataSource {
 public:
  explicit SyntheticData(const config::Config& config);

  // Samples at global positions [first, first + count), as the model's Batch.
  models::Batch batch(int64_t first, int64_t count) const override;

 private:
  Tensor images(const Tensor& classes, int64_t first, float noise) const;

  config::Config config_;
  uint64_t seed_;
  Tensor prototypes_;  // (classes, H, W, C): one fixed image per class, drawn once
};

}  // namespace tessera::train
