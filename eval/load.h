#pragma once
// A checkpoint's model, built from the config it trained with and loaded with its parameters
// (checkpoint/checkpoint.h), for the tools that read checkpoints (eval, generate, sample). One
// process, no tensor parallelism: any layout the run was written with loads.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "checkpoint/checkpoint.h"
#include "models/model.h"

namespace tessera::eval {

struct LoadedModel {
  checkpoint::CheckpointInfo info;
  std::unique_ptr<models::Model> model;
  std::string family;   // "gpt", "vit", "clip", "siglip" or "dit"
  std::string run_dir;  // the run directory holding checkpoints/ (info.dir/../..)
  std::string weights;  // "ema" (the moving average of the weights, train.ema_decay) or "raw"
};

// The family name of a model config.
std::string model_family(const config::ModelConfig& m);

// Which weights `weights` selects in `info`: "ema" (an error naming the checkpoint when it holds no
// EMA), "raw" (the trained parameters), or "auto" (the EMA when the checkpoint holds one, else the
// raw parameters). Returns "ema" or "raw"; any other value is an error naming it.
absl::StatusOr<std::string> resolve_weights(const checkpoint::CheckpointInfo& info,
                                            const std::string& weights);

// Loads the resolved weights ("ema" or "raw", from resolve_weights) of `info` into `params`, a
// fresh model's made from info.config. With "ema" the parameters the run froze (train.freeze)
// keep their saved values, which is what the trainer averaged them as.
absl::Status load_weights(const checkpoint::CheckpointInfo& info, const std::string& resolved,
                          models::ParamStore& params);

// The model lives on `device` (the parameters are read on the host and copied there).
// weights: "ema", "raw" or "auto", as resolve_weights.
absl::StatusOr<LoadedModel> load_checkpoint_model(const std::string& path,
                                                  Device device = Device::cpu(),
                                                  const std::string& weights = "auto");

// An error unless the checkpoint is one of `families` ("clip" also matches "siglip"), naming
// the checkpoint, its family and the verb.
absl::Status expect_family(const LoadedModel& m, const std::vector<std::string>& families,
                           const std::string& verb);

}  // namespace tessera::eval
