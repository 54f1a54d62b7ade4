#pragma once
// The training loop behind `tessera train`: config -> model -> data -> steps of (micro-batches
// of forward/backward, clip, AdamW) -> metrics.

#include <memory>
#include <string>
#include <vector>

#include "models/model.h"
#include "nlohmann/json.hpp"
#include "proto/config.pb.h"

namespace tessera::train {

class SyntheticData;

// Exit statuses of `tessera train` (DESIGN.md: interfaces users' scripts rely on).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // message on stderr names the file, field or rank

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set PATH=VALUE
  std::string run_dir;                 // empty: runs/<config name>-<UTC time>
  bool quiet = false;                  // no per-step console lines (tests)
};

// Runs a training job; returns the process exit status. Errors are printed to stderr.
int run_train(const TrainOptions& options);

// The loop itself, for callers that hold a resolved config (tests, later the distributed
// runtime). Throws tessera::Error on failure.
class Trainer {
 public:
  // Creates run_dir (and parents), writes run_dir/config.pbtxt, builds and initialises the model.
  Trainer(const config::Config& config, std::string run_dir, bool quiet);
  ~Trainer();
  // Runs train.steps steps; returns kExitOk, or kExitError after too many non-finite steps.
  int run();
  models::Model& model() { return *model_; }

 private:
  nlohmann::json evaluate(const SyntheticData& data, int64_t step);

  config::Config config_;
  std::string run_dir_;
  bool quiet_;
  std::unique_ptr<models::Model> model_;
};

}  // namespace tessera::train
