#pragma once
// The "a model learns from this data" check the data-source suites share (shard_data_test,
// shard_data_v2_test, text_data_test): train in one process, read back the logged losses.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "train/trainer.h"

namespace tessera::train::testing_support {

// Trains `cfg` in one process into a fresh `run` directory; returns the loss of each record of
// its metrics.jsonl in order (none when the run failed, which is also reported).
inline std::vector<double> train_losses(const config::Config& cfg, const std::string& run) {
  std::filesystem::remove_all(run);
  Trainer t(cfg, run, true);
  const int rc = t.run();
  EXPECT_EQ(rc, kExitOk) << run;
  std::vector<double> losses;
  if (rc != kExitOk) return losses;
  std::ifstream f(run + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);)
    losses.push_back(nlohmann::json::parse(line)["loss"]);
  return losses;
}

}  // namespace tessera::train::testing_support
