#pragma once
// Internal to pack_images: what one rank of a parallel pack hands to rank 0, and its encoding
// for PackOptions::gather (JSON text: small, a few lines per shard and per skipped input).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data_pipeline/pack.h"
#include "proto/data.pb.h"

namespace tessera::data {

struct RankSplit {
  int64_t num_samples = 0;
  std::vector<ShardInfo> shards;  // path (file name in out_dir), num_samples, bytes, hash
};

struct RankResult {
  RankSplit train, val;
  std::vector<SkippedInput> skipped;  // in index order
};

// A failed rank sends its error instead of a result.
std::string encode_rank_result(const absl::StatusOr<RankResult>& result);

// Decodes rank `rank`'s string; a rank that failed comes back as its error, prefixed with
// "rank R: " so the job's message names it.
absl::StatusOr<RankResult> decode_rank_result(const std::string& text, int rank);

}  // namespace tessera::data
