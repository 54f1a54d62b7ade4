#pragma once
// Where the trainer's samples come from. Every source is keyed by the global position in the
// sample stream (docs/DESIGN.md decision 5): batch(first, count) returns the samples at positions
// [first, first + count), whatever rank or micro-batch asks, so a run's data never depends on how
// many ranks share it.

#include <cstdint>
#include <memory>
#include <string>

#include "models/model.h"
#include "proto/config.pb.h"

namespace tessera::train {

// Positions far beyond any a run trains on. Evaluation without a held-out split (synthetic data)
// reads there, so training never saw those samples; Evaluator::evaluate (train/evaluator.h) and `tessera eval` agree.
inline constexpr int64_t kFarAheadPosition = int64_t(1) << 40;

// The side of the model's square input images (ViT, CLIP's image tower, DiT); 0 without images.
int model_image_size(const config::ModelConfig& m);

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual models::Batch batch(int64_t first, int64_t count) const = 0;
};

// data.source: "synthetic" (train/synthetic_data.h) or the path of a manifest written by
// `tessera pack` (train/shard_data.h). Throws tessera::Error naming the manifest or the field.
std::unique_ptr<DataSource> make_data_source(const config::Config& config);
// The same for another source than data.source; training = false (evaluation's held-out
// manifest) never augments.
std::unique_ptr<DataSource> make_data_source(const config::Config& config,
                                             const std::string& source, bool training = true);

// The manifest evaluation reads (EvalConfig.source): eval.source when set (and not "none"),
// else DIR/val.pbtxt when data.source is a manifest DIR/NAME.pbtxt other than it and that file
// exists; "" means: evaluate on data.source at positions far beyond training.
std::string eval_source(const config::Config& config);

}  // namespace tessera::train
