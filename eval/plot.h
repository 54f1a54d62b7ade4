#pragma once
// `tessera plot`: a run's curves from RUN_DIR/metrics.jsonl as PNG charts (eval/chart.h):
//   loss.png  train loss per logged step and eval loss at each evaluation
//   lr.png    the learning rate
//   eval.png  every other numeric field of the eval records (accuracies, recalls, ...), when any
// Lines that do not parse are an error naming the file and line, except an unfinished last line
// (a run still writing).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "eval/chart.h"

namespace tessera::eval {

struct RunCurves {
  std::vector<Series> loss, lr, eval;
};

// Reads metrics.jsonl into the charts' series.
absl::StatusOr<RunCurves> read_run_curves(const std::string& metrics_path);

// Writes the charts into out_dir (created); returns the files written.
absl::StatusOr<std::vector<std::string>> plot_run(const std::string& run_dir,
                                                  const std::string& out_dir);

}  // namespace tessera::eval
