// The Loader's delivery rate against a raw read() of the same files, in one run:
// 64x64 shards (4 x 1,024 samples, 32 tokens, labels), uncompressed and gzip-1, read in the
// GlobalSampler's shuffled order (window of 8 shards) in batches of 256 by a Loader with 1 and
// 2 worker threads (a fresh loader each time: cold chunk cache, files in the page cache), with
// and without the trainer's normalisation transform ("cold": every chunk and batch buffer is
// fresh memory). Then the steady state of a long run ("steady"): one loader over 1 + 3 epochs
// (the first untimed), samples shuffled within one shard at a time and a chunk cache of two
// shards, so chunks are evicted and re-read every epoch as with a dataset much larger than the
// cache (the 256 MiB default holds a window of 8 of 1,024-sample shards). Prints a table, then
// one JSON line. Each loader row is the best of 3 runs; MB per CPU second (the whole process's
// user + system time) is given next to the wall-clock rate, since the machine is often loaded.
// Not a timed assertion.
//
//   bench_loader [DIR] [--no-gzip] [--no-normalise]
//   (DIR default /tmp; --no-gzip: uncompressed shards only; --no-normalise: skip the rows with
//   the normalisation transform; both to profile the loader's own reading with perf)

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data_pipeline/augment.h"
#include "data_pipeline/global_sampler.h"
#include "data_pipeline/loader.h"
#include "data_pipeline/shard_writer.h"
#include "nlohmann/json.hpp"

namespace {

using namespace tessera::data;

constexpr int64_t kRes = 64, kShards = 4, kPerShard = 1024, kBatch = 256;
constexpr int64_t kImageBytes = kRes * kRes * 3;

// CPU seconds (user + system) of the whole process: on a machine loaded by other work, MB per
// CPU second measures the cost of delivering the data where wall-clock rates mostly measure
// the load (scripts/bench_loader reports both).
double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void die_unless(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "bench_loader: %s\n", std::string(s.message()).c_str());
    std::exit(1);
  }
}

std::vector<std::string> write_shards(const std::string& dir, int gzip) {
  std::vector<std::string> paths;
  std::mt19937 rng(1);
  // A gradient plus noise, so gzip sees something like an image (as bench_shard_io).
  std::vector<std::vector<uint8_t>> images(61, std::vector<uint8_t>(kImageBytes));
  for (size_t k = 0; k < images.size(); ++k)
    for (int64_t p = 0; p < kImageBytes; ++p)
      images[k][p] = uint8_t((p / 3 % kRes) + k + (rng() & 15));
  std::vector<int32_t> tokens(20, 17);
  for (int64_t s = 0; s < kShards; ++s) {
    const std::string path = absl::StrCat(dir, "/bench_loader_gz", gzip, "_", s, ".h5");
    ShardWriterOptions o;
    o.resolution = kRes;
    o.token_length = 32;
    o.labels = true;
    o.gzip_level = gzip;
    auto w = ShardWriter::create(path, o);
    die_unless(w.status());
    for (int64_t i = 0; i < kPerShard; ++i)
      die_unless((*w)->append({images[(s * kPerShard + i) % images.size()],
                               "a clip art of something (somewhere)", tokens, int32_t(i % 22)}));
    die_unless((*w)->finish());
    paths.push_back(path);
  }
  return paths;
}

// read() of every file's bytes into one buffer, best of 3 passes: MB/s of file bytes, wall
// clock and per CPU second.
struct RawRate {
  double mb_s = 0, mb_cpu_s = 0;
};
RawRate raw_read_mb_s(const std::vector<std::string>& paths) {
  std::vector<char> buf(size_t(4) << 20);
  RawRate best;
  for (int pass = 0; pass < 3; ++pass) {
    int64_t bytes = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    for (const auto& p : paths) {
      const int fd = ::open(p.c_str(), O_RDONLY);
      for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) bytes += n;
      ::close(fd);
    }
    best.mb_s = std::max(best.mb_s, bytes / 1e6 / seconds_since(t0));
    best.mb_cpu_s = std::max(best.mb_cpu_s, bytes / 1e6 / std::max(1e-6, cpu_seconds() - c0));
  }
  return best;
}

struct Rate {
  double samples_s = 0, mb_s = 0, mb_cpu_s = 0;
};

// steady: see the file comment.
Rate loader_rate(const std::vector<std::string>& paths, int threads, bool normalise, bool steady) {
  DatasetShape shape;
  shape.shard_sizes.assign(kShards, kPerShard);
  SamplerConfig sc;
  sc.seed = 3;
  sc.global_batch = kBatch;
  sc.shuffle_window = steady ? 1 : 8;
  GlobalSampler sampler(shape, sc);
  LoaderOptions o;
  o.threads = threads;
  o.prefetch_batches = 4;
  o.stride = kBatch;
  if (steady) o.cache_bytes = 2 * kPerShard * kImageBytes;
  Loader::Transform transform;
  if (normalise) {
    transform = [](SampleBatch& b) {  // what train/shard_data.cc does on the workers
      const float scale[3] = {0.0146f, 0.0150f, 0.0142f}, bias[3] = {-1.79f, -1.75f, -1.48f};
      b.pixels.resize(b.images.size());
      normalise_pixels(b.images.data(), int64_t(b.images.size() / 3), scale, bias, b.pixels.data());
    };
  }
  const int64_t epoch = sampler.batches_per_epoch() * kBatch;
  Loader loader(
      paths, [&](int64_t p) { return sampler.at(p / epoch, p % epoch); }, o, transform);
  const int64_t warm = steady ? epoch : 0, total = steady ? 3 * epoch : epoch;
  for (int64_t first = 0; first < warm; first += kBatch)
    die_unless(loader.get(first, kBatch).status());
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = cpu_seconds();
  for (int64_t first = warm; first < warm + total; first += kBatch)
    die_unless(loader.get(first, kBatch).status());
  const double s = seconds_since(t0), cpu = cpu_seconds() - c0;
  return {total / s, total * kImageBytes / 1e6 / s, total * kImageBytes / 1e6 / cpu};
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp";
  bool gzip_too = true, normalise_too = true;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--no-gzip") {
      gzip_too = false;
    } else if (std::string(argv[i]) == "--no-normalise") {
      normalise_too = false;
    } else {
      dir = argv[i];
    }
  }
  nlohmann::json out;
  std::printf("%-13s %-18s %8s %12s %10s %12s %12s %12s\n", "shards", "reader", "threads",
              "samples/s", "MB/s", "of raw read", "MB/cpu-s", "of raw (cpu)");
  for (int gzip : {0, 1}) {
    if (gzip && !gzip_too) continue;
    const auto paths = write_shards(dir, gzip);
    const RawRate raw_rate = raw_read_mb_s(paths);
    const double raw = raw_rate.mb_s, raw_cpu = raw_rate.mb_cpu_s;
    const std::string name = gzip ? "gzip1" : "uncompressed";
    out[name]["raw_read_mb_s"] = raw;
    out[name]["raw_read_mb_cpu_s"] = raw_cpu;
    std::printf("%-13s %-18s %8s %12.0f %10.0f %12s %12.0f %12s\n", name.c_str(), "read()", "1",
                raw * 1e6 / kImageBytes, raw, "1.00", raw_cpu, "1.00");
    for (bool steady : {false, true}) {
      for (bool normalise : {false, true}) {
        if (normalise && !normalise_too) continue;
        for (int threads : {1, 2}) {
          Rate r;  // best of 3 (wall clock and CPU separately), as the raw read
          for (int rep = 0; rep < 3; ++rep) {
            const Rate t = loader_rate(paths, threads, normalise, steady);
            if (t.mb_s > r.mb_s) r.samples_s = t.samples_s, r.mb_s = t.mb_s;
            r.mb_cpu_s = std::max(r.mb_cpu_s, t.mb_cpu_s);
          }
          // The cold keys keep their earlier names (scripts/bench_loader, FORMAT.md).
          const std::string key = absl::StrCat(steady ? "steady_" : "",
                                               normalise ? "normalised_" : "", "threads_", threads);
          out[name][key] = {{"samples_s", r.samples_s},
                            {"mb_s", r.mb_s},
                            {"of_raw", r.mb_s / raw},
                            {"mb_cpu_s", r.mb_cpu_s},
                            {"of_raw_cpu", r.mb_cpu_s / raw_cpu}};
          std::printf(
              "%-13s %-18s %8d %12.0f %10.0f %12.2f %12.0f %12.2f\n", name.c_str(),
              absl::StrCat(normalise ? "loader+norm" : "loader", steady ? " steady" : "").c_str(),
              threads, r.samples_s, r.mb_s, r.mb_s / raw, r.mb_cpu_s, r.mb_cpu_s / raw_cpu);
        }
      }
    }
    for (const auto& p : paths) std::filesystem::remove(p);
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
