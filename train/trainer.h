#pragma once
// The training loop behind `tessera train`: config -> layout -> model -> data -> steps of
// (micro-batches of forward/backward with overlapped gradient all-reduce, clip, AdamW) ->
// metrics.
//
// Data parallel: under mpirun/srun every rank runs this loop on its slice of each global batch
// (docs/DESIGN.md decision 5: which samples form a step never depends on the number of ranks); the
// gradients are averaged by distributed::GradSync bucket by bucket while backward still runs, so
// every rank applies the same update to the same parameters. With parallel.zero_stage = 1 the
// gradients are reduce-scattered instead and each rank updates only its shard, holding 1/dp of
// the optimizer state (train/zero_optimizer.h); the parameters are then all-gathered.

#include <memory>
#include <string>
#include <vector>

#include "core/upload.h"
#include "distributed/communicator.h"
#include "distributed/layout.h"
#include "models/model.h"
#include "nlohmann/json.hpp"
#include "proto/config.pb.h"

namespace tessera::train {

class DataSource;

// Exit statuses of `tessera train` (docs/DESIGN.md: interfaces users' scripts rely on).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // message on stderr names the file, field or rank
// Stopped by SIGTERM or SIGUSR1 after saving a checkpoint: run the same command with
// `--resume auto` to continue (EX_TEMPFAIL; Slurm requeue scripts test for it).
inline constexpr int kExitResumable = 75;

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set PATH=VALUE
  std::string run_dir;                 // empty: runs/<config name>-<UTC time>
  bool quiet = false;                  // no per-step console lines (tests)
  std::string resume;                  // --resume: "auto", a checkpoint path, or empty (fresh)
};

// Runs a training job; returns the process exit status. Errors are printed to stderr. Started
// by mpirun or srun (several ranks), it initialises MPI and trains data-parallel.
int run_train(const TrainOptions& options);

// The loop itself, for callers that hold a resolved config (tests, tools).
class Trainer {
 public:
  // world: the ranks training together, borrowed (nullptr: this process alone). Rank 0 creates
  // run_dir (and parents) and writes run_dir/config.pbtxt and the metrics. Builds and initialises
  // the model (the same parameters on every rank: init depends on the seed only).
  Trainer(const config::Config& config, std::string run_dir, bool quiet,
          distributed::Communicator* world = nullptr);
  ~Trainer();
  // Continue from a checkpoint in run(): "auto" (the run directory's newest committed one, or a
  // fresh start) or a path (checkpoint/checkpoint.h). Any layout loads any checkpoint of the model.
  void set_resume(std::string what) { resume_ = std::move(what); }
  // Runs train.steps steps, saving checkpoints (checkpoint.*; always at the end); returns
  // kExitOk, kExitError after too many non-finite steps, or kExitResumable when a stop signal
  // arrived (core/preemption.h) and the checkpoint is saved. Throws tessera::Error.
  int run();
  models::Model& model() { return *model_; }
  const distributed::ParallelLayout& layout() const { return layout_; }
  Device device() const { return device_; }

 private:
  nlohmann::json evaluate(const DataSource& data, int64_t step);
  double average_over_dp(double value);
  bool leader() const { return layout_.world_rank() == 0; }

  config::Config config_;
  std::string run_dir_;
  bool quiet_;
  distributed::ParallelLayout layout_;
  Device device_;  // train.device: parameters, gradients, optimizer state and activations
  std::unique_ptr<models::Model> model_;
  std::unique_ptr<Uploader> uploader_;  // batches to device_ (pinned, async on CUDA)
  std::string resume_;
  // Held-out evaluation data (eval.source, train/data_source.h eval_source), opened by the
  // first evaluate(); null: evaluate on the training source far beyond the trained positions.
  std::unique_ptr<DataSource> eval_data_;
  std::string eval_path_;
  bool eval_opened_ = false;
};

}  // namespace tessera::train
