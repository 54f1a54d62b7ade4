#pragma once
// A whole evaluation split in memory: every sample of a packed manifest (`tessera pack`), read
// once, in shard order. Evaluation splits are small (the demo's val split is a few hundred
// 64x64 images), and scoring all of them, each once, is what the metrics are defined on — the
// training DataSource instead cycles whole global batches in a shuffled order.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "proto/data.pb.h"

namespace tessera::eval {

struct EvalSplit {
  std::string path;  // the manifest, for messages
  data::Manifest manifest;
  int64_t n = 0;
  int resolution = 0;
  std::vector<uint8_t> images;        // (N, S, S, 3)
  int token_length = 0;               // L; 0 without tokens
  std::vector<int32_t> tokens;        // (N, L) or empty
  std::vector<int32_t> eot;           // (N) end-of-text position, or empty
  std::vector<int32_t> labels;        // (N) or empty
  std::vector<std::string> captions;  // (N)
};

// Loads at most max_samples (0: all) of the split a manifest describes. Encoded shards (format
// version 2) are decoded and centre-cropped (the shorter side resized to image_size, as the
// training loader does without augmentation) to image_size, which they require; pixel shards
// keep their resolution. Errors name the manifest or the shard and sample.
absl::StatusOr<EvalSplit> load_split(const std::string& manifest_path, int64_t max_samples = 0,
                                     int image_size = 0);

// Model input of samples [first, first + count): (count, S, S, 3) f32, normalised the way
// train/shard_data.cc feeds training (CLIP mean/std for ViT and CLIP, [-1, 1] for DiT).
Tensor split_images(const EvalSplit& split, int64_t first, int64_t count, bool dit);
// (count, L) i32 tokens and (count) i32 end-of-text positions of the same samples.
Tensor split_tokens(const EvalSplit& split, int64_t first, int64_t count);
Tensor split_eot(const EvalSplit& split, int64_t first, int64_t count);
Tensor split_labels(const EvalSplit& split, int64_t first, int64_t count);

}  // namespace tessera::eval
