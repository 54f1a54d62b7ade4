#include "tests/support/reference.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/error.h"

namespace tessera::testing {

std::string source_path(const std::string& relative) {
  const char* root = std::getenv("TESSERA_SOURCE_DIR");
  TESSERA_CHECK(root != nullptr, "TESSERA_SOURCE_DIR is not set (run the tests through ctest)");
  return absl::StrCat(root, "/", relative);
}

NamedTensors run_reference(const std::string& op, const NamedTensors& inputs,
                           const std::map<std::string, std::string>& attrs) {
  static std::map<std::string, NamedTensors> cache;
  // The inputs are generated deterministically by the tests, so (op, sizes) identifies them.
  std::string key = op;
  for (const auto& [name, t] : inputs) absl::StrAppend(&key, "|", name, t.describe());
  for (const auto& [k, v] : attrs) absl::StrAppend(&key, "|", k, "=", v);
  if (auto it = cache.find(key); it != cache.end()) return it->second;

  const char* py = std::getenv("TESSERA_PYTHON");
  std::string python = py ? py : "/usr/bin/python3";
  std::string dir = std::filesystem::temp_directory_path() /
                    absl::StrCat("tessera_ref_", getpid(), "_", cache.size());
  std::filesystem::create_directories(dir);
  std::string in = dir + "/in.safetensors", out = dir + "/out.safetensors";
  absl::Status st = write_safetensors(in, inputs, attrs);
  TESSERA_CHECK(st.ok(), st.ToString());
  std::string cmd = absl::StrCat(python, " ", source_path("tests/reference/ops_reference.py"), " ",
                                 op, " ", in, " ", out, " 2>&1");
  int rc = std::system(cmd.c_str());
  TESSERA_CHECK(rc == 0, "reference script failed (exit ", rc, "): ", cmd);
  auto result = read_safetensors(out);
  TESSERA_CHECK(result.ok(), result.status().ToString());
  std::filesystem::remove_all(dir);
  cache.emplace(key, *result);
  return *result;
}

}  // namespace tessera::testing
