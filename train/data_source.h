#pragma once
// Where the trainer's samples come from. Every source is keyed by the global position in the
// sample stream (DESIGN.md decision 5): batch(first, count) returns the samples at positions
// [first, first + count), whatever rank or micro-batch asks, so a run's data never depends on how
// many ranks share it.

#include <cstdint>
#include <memory>
#include <string>

#include "models/model.h"
#include "proto/config.pb.h"

namespace tessera::train {

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual models::Batch batch(int64_t first, int64_t count) const = 0;
};

// data.source: "synthetic" (train/synthetic_data.h) or the path of a manifest written by
// `tessera pack` (train/shard_data.h). Throws tessera::Error naming the manifest or the field.
std::unique_ptr<DataSource> make_data_source(const config::Config& config);
// The same for another source than data.source (evaluation's held-out manifest).
std::unique_ptr<DataSource> make_data_source(const config::Config& config,
                                             const std::string& source);

// The manifest evaluation reads (EvalConfig.source): eval.source when set (and not "none"),
// else DIR/val.pbtxt when data.source is a manifest DIR/NAME.pbtxt other than it and that file
// exists; "" means: evaluate on data.source at positions far beyond training.
std::string eval_source(const config::Config& config);

}  // namespace tessera::train
