#pragma once
// Training data from HDF5 shards packed by `tessera pack`: data.source names the manifest. The
// global stream position p maps to (epoch, position in epoch) with epochs of whole global
// batches, and data::GlobalSampler maps that to (shard, row): the order depends on the seed and
// the epoch only. Images become the model's input (ViT/CLIP: normalised with CLIP's mean and
// std; DiT: scaled to [-1, 1]); CLIP gets the packed tokens and the end-of-text position.
//
// Encoded shards (format version 2) may hold images of any size: the loader decodes each one on
// its workers into a crop at the model's image_size (random-resized-crop + flip keyed by (seed,
// epoch, sample) with data.augment, else the centre square).
//
// Samples come through a data::Loader (data_pipeline/loader.h): worker threads read whole chunks,
// normalise the pixels, and assemble the batches at the next steps' positions (stride: the
// global batch) while the trainer computes (data.loader_threads, data.prefetch_batches). The
// loader starts on the first batch() call, in the process that reads (HDF5 handles never cross
// a fork).

#include <memory>
#include <string>
#include <vector>

#include "data_pipeline/global_sampler.h"
#include "data_pipeline/loader.h"
#include "proto/data.pb.h"
#include "train/data_source.h"

namespace tessera::train {

class ShardData final : public DataSource {
 public:
  // Checks the manifest against the model (image resolution, token length); throws naming both.
  // training: augment when data.augment is set (evaluation sources pass false).
  ShardData(const config::Config& config, const data::Manifest& manifest,
            const std::string& manifest_path, bool training = true);
  ~ShardData() override;

  models::Batch batch(int64_t first, int64_t count) const override;

  data::LoaderStats loader_stats() const;

 private:
  data::SampleRef sample_at(int64_t position) const;
  int64_t image_size() const;  // S of the batches: the manifest's, or encoded, the model's

  config::Config config_;
  data::Manifest manifest_;
  std::string path_;  // the manifest, for messages
  std::string dir_;
  int64_t epoch_samples_;  // whole global batches per epoch, in samples
  bool augment_ = false;
  bool encoded_ = false;  // format version 2: the loader decodes and crops (any resolution)
  std::vector<int64_t> shard_start_;  // global id of each shard's first sample (augment keys)
  mutable std::unique_ptr<data::GlobalSampler> sampler_;
  mutable std::unique_ptr<data::Loader> loader_;
};

}  // namespace tessera::train
