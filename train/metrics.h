#pragma once
// RUN_DIR/metrics.jsonl: one JSON object per logged step (at least step, loss, lr, grad_norm,
// samples_per_s, mfu, step_ms; eval records carry "kind": "eval"). Each line is flushed as it
// is written, so a dashboard or a test can read a run in progress.
//
// Next to it, RUN_DIR/tb/events.out.tfevents.* (train/tensorboard.h) receives every numeric
// field of each record (except "step") as a scalar at the record's step, tagged "<kind>/<key>":
// "train/loss" for training records (no "kind"), "eval/loss" for "kind": "eval", likewise
// "checkpoint/..." for the checkpointer's records. Flushed per record like the JSON lines.

#include <fstream>
#include <memory>
#include <string>

#include "nlohmann/json.hpp"

namespace tessera::train {

class TensorBoardWriter;

class MetricsWriter {
 public:
  // Appends to `path`; tensorboard: also write DIRNAME(path)/tb/. Throws naming the path on error.
  explicit MetricsWriter(const std::string& path, bool tensorboard = true);
  ~MetricsWriter();
  void write(const nlohmann::json& record);

  // The event file, or "" without TensorBoard output.
  std::string tensorboard_path() const;

 private:
  std::string path_;
  std::ofstream out_;
  std::unique_ptr<TensorBoardWriter> tb_;
};

}  // namespace tessera::train
