#pragma once
// Training data from HDF5 shards packed by `tessera pack`: data.source names the manifest. The
// global stream position p maps to (epoch, position in epoch) with epochs of whole global
// batches, and data::GlobalSampler maps that to (shard, row): the order depends on the seed and
// the epoch only. Images become the model's input (ViT/CLIP: normalised with CLIP's mean and
// std; DiT: scaled to [-1, 1]); CLIP gets the packed tokens and the end-of-text position.
//
// Readers open lazily in the process that reads (an HDF5 handle never crosses a fork). Reads are
// per sample: each costs a whole chunk (data_pipeline/FORMAT.md), which the loader of the data
// pipeline issue will replace with chunk-sized runs, prefetching and threads.

#include <memory>
#include <string>
#include <vector>

#include "data_pipeline/global_sampler.h"
#include "data_pipeline/shard_reader.h"
#include "proto/data.pb.h"
#include "train/data_source.h"

namespace tessera::train {

class ShardData final : public DataSource {
 public:
  // Checks the manifest against the model (image resolution, token length); throws naming both.
  ShardData(const config::Config& config, const data::Manifest& manifest,
            const std::string& manifest_dir);
  ~ShardData() override;

  models::Batch batch(int64_t first, int64_t count) const override;

 private:
  data::ShardReader& reader(int shard) const;

  config::Config config_;
  data::Manifest manifest_;
  std::string dir_;
  int64_t epoch_samples_;  // whole global batches per epoch, in samples
  mutable std::unique_ptr<data::GlobalSampler> sampler_;
  mutable std::vector<std::unique_ptr<data::ShardReader>> readers_;
};

}  // namespace tessera::train
