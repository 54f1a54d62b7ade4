#pragma once
// Sharded checkpoints (checkpoint/CHECKPOINT.md): the one header the rest of tessera includes.
//   - reading, for `tessera train --resume` and for tools (eval, export, inspect):
//     open_checkpoint, load_model_parameters, load_moments, TensorReader, verify_commit_marker;
//   - the trainer's side: Checkpointer (save at step boundaries, commit across ranks, restore).
// Everything else in checkpoint/ is internal (namespace checkpoint::detail).
//
// Any layout reads any checkpoint of the same model: tensors are stored by global name in pieces
// with global coordinates, and a reader selects the hyperslabs its own shard needs.
//
// The metadata messages (Metadata, Tensor, Piece, ...) are generated from proto/checkpoint.proto
// into this same namespace: inside it, `Tensor` is the stored tensor's description and
// `tessera::Tensor` the in-memory tensor.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "distributed/layout.h"
#include "distributed/zero_shards.h"
#include "models/param_store.h"
#include "nlohmann/json.hpp"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"

namespace tessera::checkpoint {

namespace detail {
class PieceReader;
}

// ---- Reading --------------------------------------------------------------------------------

struct CheckpointInfo {
  std::string dir;  // the committed step directory
  int64_t step = 0;
  config::Config config;          // the config the run trained with
  checkpoint::Metadata metadata;  // everything else (layout, tensors and pieces, cursor, ...)
};

// PATH: a step directory, a checkpoints/ directory or a run directory (-> its latest committed
// step). Errors name the path and what is wrong (no commit marker, metadata unreadable, ...).
absl::StatusOr<CheckpointInfo> open_checkpoint(const std::string& path);

// Checks the step directory's commit marker again: present, parses, and matches metadata.pb
// (size and CRC-32), i.e. the metadata did not change after the commit.
absl::Status verify_commit_marker(const CheckpointInfo& ckpt);

// Loads the model parameters (by global name, any TP shard/layout) into `params`; checks names,
// shapes and checksums and names the file and tensor on error. `params` is unchanged on error
// only as far as no read had started: on a checksum error mid-way, reload or discard it.
// role "ema": the moving average of the weights instead (has_role tells whether it was saved);
// parameters frozen in `params` (train.freeze: the run saved no average for them) keep their
// values.
absl::Status load_model_parameters(const CheckpointInfo& ckpt, models::ParamStore& params,
                                   const std::string& role = "param");
// Whether the checkpoint stores tensors of `role` ("param", "adam_m", "adam_v", "ema").
bool has_role(const CheckpointInfo& ckpt, const std::string& role);

// Starting from another model (train/init_from.h): parameter i of `params` loads the stored
// "param" tensor named sources[i] (a checkpoint of any model; empty: parameter i is left as it
// is). Each named tensor must exist with the parameter's global shape; this rank reads only its
// own shard of it, as load_model_parameters does. Errors name the file and the tensor.
absl::Status load_parameters_from(const CheckpointInfo& ckpt, models::ParamStore& params,
                                  const std::vector<std::string>& sources);

// The Adam moments of this rank, in the optimizer's own layout: (N) like the flat parameter
// buffer, or under ZeRO-1 (`zero` set) this rank's shard buffer (shard_numel). `ema`, when
// defined, is the moving average of the weights (train/ema.h) in the same layout, stored as
// tensors of role "ema".
struct MomentsRef {
  tessera::Tensor m, v;
  const distributed::ZeroShards* zero = nullptr;
  tessera::Tensor ema;
};

// Loads the Adam moments this rank holds (any writing layout), and the EMA when moments.ema is
// defined: from the checkpoint's "ema" tensors, or, for a checkpoint written without an EMA, from
// its parameters (the average starts there). Errors as above.
absl::Status load_moments(const CheckpointInfo& ckpt, const models::ParamStore& params,
                          const MomentsRef& moments);

// Whole stored tensors, one at a time (tools that look at every tensor: inspect). Keeps the
// rank files open between reads.
class TensorReader {
 public:
  explicit TensorReader(const CheckpointInfo& ckpt);
  ~TensorReader();
  // Fills dst (t's global shape, row-major: the product of t.shape() floats) with tensor `t`
  // (one of ckpt.metadata.tensors()), from every stored piece of it. Every chunk read is
  // verified against its checksum; errors name the file, dataset and tensor, and pieces that do
  // not cover the tensor are an error.
  absl::Status read(const checkpoint::Tensor& t, float* dst);

 private:
  std::unique_ptr<detail::PieceReader> reader_;
};

// ---- The trainer's side ---------------------------------------------------------------------
// Every Checkpointer call is collective over the world communicator: all ranks call it at the
// same step boundary, and a failure on one rank becomes the same tessera::Error on all of them.
//
// Save (checkpoint/CHECKPOINT.md):
//   1. rank 0 (re)creates RUN_DIR/checkpoints/.tmp-step_N/; all ranks agree it exists;
//   2. each rank writes its HDF5 file and manifest there and fsyncs them;
//   3. all ranks agree that every write succeeded (all-reduce of a failure count = barrier);
//   4. rank 0 merges the manifests into metadata.pb (+ .pbtxt), fsyncs, writes COMMITTED,
//      renames the directory to step_N, fsyncs, replaces `latest`, applies retention;
//   5. all ranks agree that the commit succeeded.
// A crash anywhere before the rename leaves a .tmp- directory that is never loaded, and is
// removed by the next save. Async: step 2 runs in a background thread on a host copy of the
// state; steps 3-5 run at the first step boundary where every rank's thread has finished
// (step_boundary), or when the next save or the end of training waits for it.

struct TrainProgress {
  int64_t step = 0;             // the last completed step (0: fresh start)
  int64_t next_position = 0;    // the data cursor: next global sample position
  int64_t optimizer_steps = 0;  // AdamW's applied updates (bias correction)
  int64_t skipped_steps = 0;
  double loss = 0, lr = 0, grad_norm = 0;
};

class Checkpointer {
 public:
  // run_dir: checkpoints go to run_dir/checkpoints. print: console lines (rank 0).
  Checkpointer(const config::Config& config, const std::string& run_dir,
               const distributed::ParallelLayout& layout, bool print);
  ~Checkpointer();  // joins a background write (without committing it)

  const std::string& root() const { return root_; }

  // At the end of every step (progress.step of total_steps): saves when due (every
  // checkpoint.every_steps, the last step, a stop) and returns true when the run stops here
  // because a rank got a stop signal (core/preemption.h; then call stop()).
  bool end_of_step(const models::ParamStore& params, const MomentsRef& moments,
                   const TrainProgress& progress, int64_t total_steps);
  // Waits for the stop's checkpoint to commit and says so on stderr (exit status 75 follows).
  void stop();
  // Adds "ckpt_stall_ms" (the training time the saves since the last call held the loop) and
  // "ckpt_step" (the last saved step) to a metrics record, when there was a save.
  void report_stall(nlohmann::json& record);

  // Saves the state after progress.step. Sync: returns when committed. Async
  // (checkpoint.async): returns after the host copy; a previous async save is completed first.
  void save(const models::ParamStore& params, const MomentsRef& moments,
            const TrainProgress& progress);
  // At every step boundary: completes an async save once every rank's write finished, and
  // returns true when any rank has preemption::stop_requested() (one all-reduce over the world).
  bool step_boundary(int64_t step);
  // Waits for and commits an async save in flight (before exit).
  void finish();

  // `what`: "auto" (the newest committed checkpoint under root(), or nullopt: fresh start), a
  // path for open_checkpoint, or empty (fresh start; warns when root() holds checkpoints). Loads
  // parameters and moments into this layout (resharding as needed) and returns the progress to
  // continue from. Throws naming the file and tensor.
  std::optional<TrainProgress> restore(const std::string& what, models::ParamStore& params,
                                       const MomentsRef& moments);

 private:
  bool agree_ok(bool ok);  // all-reduce over the world: true when every rank is ok
  void complete();         // steps 3-5 for the pending save
  void join();

  config::Config config_;
  std::string root_;
  const distributed::ParallelLayout& layout_;
  bool print_;
  bool async_;
  // The save in flight (async) or being completed.
  struct Pending;
  std::unique_ptr<Pending> pending_;
  // Saves since report_stall: the stall is the whole save when synchronous; the host copy plus
  // any wait for the previous background write when async.
  double stall_ms_ = 0;
  int64_t stall_step_ = -1;
  int64_t saved_step_ = -1;  // the last save started
};

}  // namespace tessera::checkpoint
