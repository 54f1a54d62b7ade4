#pragma once
// What the harnesses share: the parsers under test read files, so each input is written to a
// file in a per-process scratch directory (in TMPDIR, removed at exit) first.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace tessera::fuzz {

inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    auto d = std::filesystem::path(tmp != nullptr ? tmp : "/tmp") /
             ("tessera_fuzz_" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    static struct Remove {
      std::filesystem::path d;
      ~Remove() {
        std::error_code ec;
        std::filesystem::remove_all(d, ec);
      }
    } remove{d};
    return d.string();
  }();
  return dir;
}

// Writes bytes to scratch_dir()/name and returns the path.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

// The bytes of `v` as they lie in memory (little-endian here), for writing a typed dataset.
template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  return {p, p + v.size() * sizeof(T)};
}

// A property a parser must keep (not a crash by itself): abort so libFuzzer records the input.
#define TESSERA_FUZZ_ASSERT(cond)                                                            \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

}  // namespace tessera::fuzz
