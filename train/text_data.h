#pragma once
// GPT training data from token-stream shards (`tessera pack --text`, data_pipeline/
// text_shard.h): data.source names a manifest of kind "text". Sample w of a shard is the window
// of T + 1 tokens starting at w*T (T = model.gpt.context): tokens = its first T, targets = its
// last T. Windows do not overlap, so an epoch reads each token once; a shard of n tokens holds
// (n - 1) / T windows. The order of windows is data::GlobalSampler's (seed, epoch) permutation,
// keyed by the global stream position like every DataSource.
//
// Windows are read each as a hyperslab of T + 1 tokens (a few KB; the HDF5 chunk cache keeps
// the 256 KiB chunk around for the windows that follow) on one worker thread, ahead of the
// trainer: a request for [first, first + count) queues the data.prefetch_batches requests at
// first + k * G (G = data.global_batch_size), the trainer's next ones, as the image Loader does.
// With data.prefetch_batches = 0 windows are read on the caller's thread. Only one thread ever
// uses the HDF5 readers. Errors (thrown as tessera::Error) surface on the caller's thread, for
// the request whose windows failed.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data_pipeline/global_sampler.h"
#include "data_pipeline/text_shard.h"
#include "proto/data.pb.h"
#include "train/data_source.h"

namespace tessera::train {

class TextData final : public DataSource {
 public:
  // Throws tessera::Error naming the manifest when the model is not GPT, a shard is shorter
  // than one window, or the end-of-text id is outside the model's vocabulary.
  TextData(const config::Config& config, const data::Manifest& manifest,
           const std::string& manifest_path);
  ~TextData() override;

  models::Batch batch(int64_t first, int64_t count) const override;

 private:
  struct Prefetch;
  // Windows at positions [first, first + count): tokens and targets, (count, T) each.
  void read_windows(int64_t first, int64_t count, std::vector<int32_t>& tokens,
                    std::vector<int32_t>& targets) const;

  config::Config config_;
  data::Manifest manifest_;
  std::string path_, dir_;
  int64_t context_ = 0, vocab_ = 0, epoch_samples_ = 0;
  mutable std::unique_ptr<data::GlobalSampler> sampler_;
  mutable std::vector<std::unique_ptr<data::TextShardReader>> readers_;
  std::unique_ptr<Prefetch> prefetch_;  // null: no read-ahead
};

}  // namespace tessera::train
