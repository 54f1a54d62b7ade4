#include "tests/support/reference.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/error.h"

namespace tessera::testing {

std::string source_path(const std::string& relative) {
  const char* root = std::getenv("TESSERA_SOURCE_DIR");
  TESSERA_CHECK(root != nullptr, "TESSERA_SOURCE_DIR is not set (run the tests through ctest)");
  return absl::StrCat(root, "/", relative);
}

namespace {

// FNV-1a over bytes: a stable name for a reference's inputs across processes and machines.
uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// Where TESSERA_REFERENCE_DIR keeps the outputs of a call: op, attributes and the inputs' names,
// shapes and bytes decide the file, so a recorded reference is replayed only for the same call.
std::string stored_path(const std::string& dir, const std::string& key,
                        const NamedTensors& inputs) {
  uint64_t h = fnv1a(key.data(), key.size(), 1469598103934665603ull);
  for (const auto& [name, t] : inputs) {
    Tensor host = t.device().is_cpu() ? t : to_device(t, Device::cpu());
    h = fnv1a(host.raw_data(), size_t(host.nbytes()), h);
  }
  return absl::StrCat(dir, "/", absl::Hex(h, absl::kZeroPad16), ".safetensors");
}

}  // namespace

// With TESSERA_REFERENCE_DIR set, references are read from that folder when it has them, and
// with TESSERA_REFERENCE_RECORD=1 also written there after a PyTorch run: a machine without
// torch (the prebuilt GPU bundle, scripts/gpu_bundle) replays what was recorded where torch is.
NamedTensors run_reference(const std::string& op, const NamedTensors& inputs,
                           const std::map<std::string, std::string>& attrs) {
  static std::map<std::string, NamedTensors> cache;
  // The inputs are generated deterministically by the tests, so (op, sizes) identifies them.
  std::string key = op;
  for (const auto& [name, t] : inputs) absl::StrAppend(&key, "|", name, t.describe());
  for (const auto& [k, v] : attrs) absl::StrAppend(&key, "|", k, "=", v);
  if (auto it = cache.find(key); it != cache.end()) return it->second;

  const char* store = std::getenv("TESSERA_REFERENCE_DIR");
  const bool record = store && std::getenv("TESSERA_REFERENCE_RECORD");
  std::string stored = store ? stored_path(store, key, inputs) : "";
  if (store && !record && std::filesystem::exists(stored)) {
    auto replayed = read_safetensors(stored);
    TESSERA_CHECK(replayed.ok(), replayed.status().ToString());
    cache.emplace(key, *replayed);
    return *replayed;
  }

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
  TESSERA_CHECK(rc == 0, "reference script failed (exit ", rc, "): ", cmd,
                store ? absl::StrCat(" (and ", stored, " holds no recorded reference)") : "");
  auto result = read_safetensors(out);
  TESSERA_CHECK(result.ok(), result.status().ToString());
  if (record) {
    std::filesystem::create_directories(store);
    std::filesystem::copy_file(out, stored, std::filesystem::copy_options::overwrite_existing);
  }
  std::filesystem::remove_all(dir);
  cache.emplace(key, *result);
  return *result;
}

}  // namespace tessera::testing
