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
//
// run() is the outline: train_step() for each step, then the components at the step boundary
// (checkpointer, step logger, evaluator). A feature that acts on every step (a teacher's
// forward, an EMA of the weights, frozen parameters) belongs in train_step() or at that boundary,
// next to the components, not inside them.

#include <memory>
#include <string>
#include <vector>

#include "core/upload.h"
#include "distributed/communicator.h"
#include "distributed/layout.h"
#include "models/model.h"
#include "proto/config.pb.h"
#include "train/step_logger.h"

namespace tessera::distributed {
class GradSync;
}

namespace tessera::checkpoint {
class Checkpointer;
struct TrainProgress;
}  // namespace tessera::checkpoint

namespace tessera::train {

class DataSource;
class Ema;
class Evaluator;
class Optimizer;

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

// train.device: the CPU, or this rank's GPU (its local rank modulo the node's GPUs), made current.
Device training_device(const config::Config& config);

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
  // Builds the run's components (optimizer, data, gradient sync, logger, evaluator,
  // checkpointer) and prints the start report; release() drops them, however run() ends.
  void prepare();
  void release();
  void report_start(double peak_flops, const std::string& peak_source) const;
  // The progress to continue from: a restored checkpoint's, or a fresh start.
  checkpoint::TrainProgress restore();
  // One optimizer step on the global batch starting at sample `position`: this rank's slices of
  // its micro-batches through forward/backward (gradients accumulated, averaged over the DP group
  // with the last one), the loss averaged over DP, then clip and update; a non-finite loss or
  // gradient leaves the parameters unchanged (result.applied false).
  StepResult train_step(int64_t step, int64_t position);
  // At every step boundary: saves when due; true when all ranks stop here (a stop signal).
  bool checkpoint_boundary(checkpoint::TrainProgress& progress);
  // After the last step: completes the final save, prints the profile and end reports.
  void finish();
  bool leader() const { return layout_.world_rank() == 0; }

  config::Config config_;
  std::string run_dir_;
  bool quiet_;
  distributed::ParallelLayout layout_;
  Device device_;  // train.device: parameters, gradients, optimizer state and activations
  std::unique_ptr<models::Model> model_;
  std::unique_ptr<Uploader> uploader_;  // batches to device_ (pinned, async on CUDA)
  std::string resume_;

  // The run's components, alive during run().
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<DataSource> data_;
  std::unique_ptr<distributed::GradSync> sync_;  // null with one DP rank
  std::unique_ptr<StepLogger> logger_;
  std::unique_ptr<Evaluator> evaluator_;
  std::unique_ptr<checkpoint::Checkpointer> checkpointer_;
  std::unique_ptr<Ema> ema_;      // train.ema_decay > 0: the moving average of the weights
  int64_t rss_before_steps_ = 0;  // for the end report's memory growth
  int64_t step_ = 0;              // the step train_step() runs (the fault-injection hook)
};

}  // namespace tessera::train
