// Whole-shard verification (data_pipeline/shard_verify.h, `tessera inspect --verify`) against a
// raw read of the same files, all in the page cache (warmed by a first untimed pass; a cold read
// cannot be measured here: dropping the page cache needs privileges this machine does not give).
// Rows, each the best of 3 passes over every file:
//   raw read      read() of each file into a 1 MiB buffer (what `cat FILE >/dev/null` does)
//   content hash  file_content_hash (the manifest's fnv1a64), done before the chunks for shards
//                 listed in a manifest
//   verify map    verify_shard(map = true): chunks with Fletcher32 alone checksummed in place in
//                 the file's mapping (the default)
//   verify hdf5   verify_shard(map = false): every chunk through HDF5's filter pipeline (H5Dread
//                 of one chunk's rows at a time)
// GB/s counts the files' bytes; ratio = the row's rate / raw read's. Not a timed assertion.
//
//   bench_verify FILE.h5...
//   bench_verify --make DIR N_SHARDS SAMPLES RESOLUTION   (random image shards with 32 tokens
//                                                        and labels, then benchmarks them)

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/support/cpu_model.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_verify.h"
#include "data_pipeline/shard_writer.h"

namespace {

using namespace tessera::data;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t raw_read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return 0;
  std::vector<char> buf(1 << 20);
  int64_t total = 0;
  for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) total += n;
  ::close(fd);
  return total;
}

std::vector<std::string> make_shards(const std::string& dir, int shards, int samples, int res) {
  std::filesystem::create_directories(dir);
  std::mt19937 rng(1);
  std::vector<std::string> paths;
  for (int s = 0; s < shards; ++s) {
    const std::string path = absl::StrCat(dir, "/bench-", s, ".h5");
    ShardWriterOptions o;
    o.resolution = res;
    o.token_length = 32;
    o.labels = true;
    auto w = ShardWriter::create(path, o);
    if (!w.ok()) std::fprintf(stderr, "%s\n", std::string(w.status().message()).c_str()), exit(1);
    std::vector<uint8_t> image(size_t(res) * res * 3);
    std::vector<int32_t> tokens(20);
    for (int i = 0; i < samples; ++i) {
      for (auto& p : image) p = uint8_t(rng());
      for (auto& t : tokens) t = int32_t(rng() % 1000);
      if (!(*w)->append({image, absl::StrCat("a caption for sample ", i), tokens, i % 10}).ok())
        exit(1);
    }
    if (!(*w)->finish().ok()) exit(1);
    paths.push_back(path);
  }
  return paths;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> files;
  if (argc == 6 && std::string(argv[1]) == "--make") {
    files = make_shards(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]));
  } else {
    for (int i = 1; i < argc; ++i) files.push_back(argv[i]);
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: bench_verify FILE.h5... | --make DIR N_SHARDS SAMPLES RES\n");
    return 1;
  }
  int64_t bytes = 0;
  for (const auto& f : files) bytes += raw_read(f);  // also warms the page cache
  std::printf("%zu shards, %.1f MB, in the page cache; CPU: %s\n", files.size(),
              double(bytes) / 1e6, tessera::bench::cpu_model().c_str());
  struct Row {
    const char* name;
    std::function<bool(const std::string&)> run;  // false: failed
  };
  const std::vector<Row> rows = {
      {"raw read", [](const std::string& f) { return raw_read(f) > 0; }},
      {"content hash", [](const std::string& f) { return file_content_hash(f).ok(); }},
      {"verify map", [](const std::string& f) { return verify_shard(f, "", true).ok(); }},
      {"verify hdf5", [](const std::string& f) { return verify_shard(f, "", false).ok(); }},
  };
  double raw_rate = 0;
  std::printf("%-14s %8s %8s\n", "", "GB/s", "ratio");
  for (const Row& row : rows) {
    double best = 1e30;
    for (int pass = 0; pass < 3; ++pass) {
      const double t0 = now_s();
      for (const auto& f : files)
        if (!row.run(f)) {
          std::fprintf(stderr, "%s failed on %s\n", row.name, f.c_str());
          return 1;
        }
      best = std::min(best, now_s() - t0);
    }
    const double rate = double(bytes) / 1e9 / best;
    if (raw_rate == 0) raw_rate = rate;
    std::printf("%-14s %8.2f %8.2f\n", row.name, rate, rate / raw_rate);
  }
  return 0;
}
