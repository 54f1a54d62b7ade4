#pragma once
// Helpers shared by the training test suites.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/reference.h"
#include "train/config.h"

namespace tessera::train::testing_support {

// A shipped config (path relative to the source tree) with --set overrides; throws on error.
inline config::Config load(const std::string& file, const std::vector<std::string>& sets = {}) {
  auto c = load_config(testing::source_path(file), sets);
  TESSERA_CHECK(c.ok(), c.status().ToString());
  return *c;
}

// A run directory below the test's temporary directory.
inline std::string run_dir(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

}  // namespace tessera::train::testing_support
