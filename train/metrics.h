#pragma once
// RUN_DIR/metrics.jsonl: one JSON object per logged step (at least step, loss, lr, grad_norm,
// samples_per_s, mfu, step_ms; eval records carry "kind": "eval"). Each line is flushed as it
// is written, so a dashboard or a test can read a run in progress.

#include <fstream>
#include <string>

#include "nlohmann/json.hpp"

namespace tessera::train {

class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& path);  // appends; throws naming the path on error
  void write(const nlohmann::json& record);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace tessera::train
