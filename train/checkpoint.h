#pragma once
// Sharded checkpoints (train/CHECKPOINT.md): reading them, for `tessera train --resume` and for
// tools (eval, export, inspect). The writing side and the trainer's use of it are in
// train/checkpointer.h.
//
// Any layout reads any checkpoint of the same model: tensors are stored by global name in pieces
// with global coordinates, and a reader selects the hyperslabs its own shard needs.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "distributed/zero_shards.h"
#include "models/param_store.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"

namespace tessera::train {

struct CheckpointInfo {
  std::string dir;  // the committed step directory
  int64_t step = 0;
  config::Config config;          // the config the run trained with
  checkpoint::Metadata metadata;  // everything else (layout, tensors and pieces, cursor, ...)
};

// PATH: a step directory, a checkpoints/ directory or a run directory (-> its latest committed
// step). Errors name the path and what is wrong (no commit marker, metadata unreadable, ...).
absl::StatusOr<CheckpointInfo> open_checkpoint(const std::string& path);

// Loads the model parameters (by global name, any TP shard/layout) into `params`; checks names,
// shapes and checksums and names the file and tensor on error. `params` is unchanged on error
// only as far as no read had started: on a checksum error mid-way, reload or discard it.
absl::Status load_model_parameters(const CheckpointInfo& ckpt, models::ParamStore& params);

// The Adam moments of this rank, in the optimizer's own layout: (N) like the flat parameter
// buffer, or under ZeRO-1 (`zero` set) this rank's shard buffer (shard_numel).
struct MomentsRef {
  Tensor m, v;
  const distributed::ZeroShards* zero = nullptr;
};

// Loads the Adam moments this rank holds (any writing layout). Errors as above.
absl::Status load_moments(const CheckpointInfo& ckpt, const models::ParamStore& params,
                          const MomentsRef& moments);

}  // namespace tessera::train
