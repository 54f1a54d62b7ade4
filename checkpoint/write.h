#pragma once
// Writing one rank's share of a checkpoint, and folding every rank's manifest into the metadata.
// Who writes what (checkpoint/CHECKPOINT.md):
//   - parameters: DP rank 0 of each tensor-parallel group, its TP shard of every parameter
//     (a replicated parameter only by TP rank 0);
//   - Adam m and v: the same ranks the same way, or under ZeRO-1 every rank its own ranges;
//   - under ZeRO-3 (sharded parameters) the parameters too: every rank its own ranges.

#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/tensor.h"
#include "distributed/layout.h"
#include "proto/checkpoint.pb.h"

namespace tessera::checkpoint::detail {

// Host f32 state of one rank (views of the live buffers, or copies for an async save).
struct RankState {
  const models::ParamStore* store = nullptr;  // names, shapes and flat offsets
  tessera::Tensor params;                     // (N), or ZeRO-3: the shard buffer (shard_numel)
  MomentsRef moments;
};

// Writes dir/rank_NNNNN.h5 (when this rank writes anything) and dir/rank_NNNNN.pieces.pb.
// Throws tessera::Error naming the file on failure.
void write_rank_files(const std::string& dir, const RankState& state, int world_rank, int dp_rank,
                      int tp_rank);

// Rank 0: reads every rank's manifest from dir and returns the metadata's tensors and files;
// checks that each tensor's pieces cover it.
absl::Status merge_manifests(const std::string& dir, int world_size, checkpoint::Metadata* meta);

}  // namespace tessera::checkpoint::detail
