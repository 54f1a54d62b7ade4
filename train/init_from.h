#pragma once
// The config's `init` section (proto/config.proto InitConfig): a fresh run's parameters start
// from another run's checkpoint, of another model or shape, by a mapping of global names.
//
// Every problem (a parameter with no stored tensor, a shape that differs, a fresh pattern that
// matches nothing, a rename rule nothing uses, a malformed rule) is collected and thrown as ONE
// tessera::Error listing them all, so a mapping is fixed in one edit. Loading goes through
// checkpoint::load_parameters_from: each rank reads only its own TP shard of each tensor, so any
// DP/TP/ZeRO layout loads a checkpoint written under any other.

#include <string>
#include <vector>

#include "models/param_store.h"
#include "proto/config.pb.h"

namespace tessera::train {

// What init would do: per parameter (ParamId) the stored name it loads, or "" (fresh).
struct InitPlan {
  std::string checkpoint_dir;  // the resolved step directory
  std::vector<std::string> sources;
  int64_t loaded = 0, fresh = 0;
  std::vector<std::string> unused;  // stored param tensors no parameter loads
};

// Plans init.* for `store` (shapes and names only; nothing is read but the metadata). Throws
// tessera::Error listing every problem. Requires init.checkpoint to be set.
InitPlan plan_init(const config::InitConfig& init, const models::ParamStore& store);

// After params.init(seed): applies the config's init section when init.checkpoint is set (on
// every rank; each reads its own shard) and returns true; false when there is none. `report`
// prints one line saying what came from where.
bool init_from_checkpoint(const config::Config& config, models::ParamStore& params, bool report);

}  // namespace tessera::train
