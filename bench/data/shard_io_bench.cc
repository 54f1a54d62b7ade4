// Times ShardWriter and ShardReader for a few image chunk sizes and compression levels, to
// choose the defaults of data_pipeline/FORMAT.md (whose table is this program's output):
// write rate, sequential reads in batches of 256 samples, random single-sample reads, file size.
// The file was just written, so reads come from the page cache: this measures HDF5 + Fletcher32
// + copies, not the disk. Not a timed assertion.
//
//   bench_shard_io [DIR]   (default /tmp)

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"

namespace {

using tessera::data::ShardReader;
using tessera::data::ShardWriter;
using tessera::data::ShardWriterOptions;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void die_unless(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    std::exit(1);
  }
}

void run(const std::string& dir, int64_t resolution, int64_t n, int64_t chunk, int gzip) {
  const std::string path =
      absl::StrCat(dir, "/bench_shard_r", resolution, "_c", chunk, "_gz", gzip, ".h5");
  ShardWriterOptions o;
  o.resolution = resolution;
  o.token_length = 77;
  o.labels = true;
  o.image_chunk = chunk;
  o.gzip_level = gzip;
  const size_t image_bytes = resolution * resolution * 3;
  // Pixels with some structure (a gradient plus noise) so gzip sees something like an image.
  // 61 distinct images (generated before timing), reused cyclically.
  std::mt19937 rng(1);
  std::vector<std::vector<uint8_t>> images(61, std::vector<uint8_t>(image_bytes));
  for (size_t k = 0; k < images.size(); ++k)
    for (size_t p = 0; p < image_bytes; ++p)
      images[k][p] = static_cast<uint8_t>((p / 3 % resolution) + k + (rng() & 15));
  std::vector<int32_t> tokens(40, 17);
  auto t0 = std::chrono::steady_clock::now();
  {
    auto w = ShardWriter::create(path, o);
    die_unless(w.status());
    for (int64_t i = 0; i < n; ++i) {
      die_unless(
          (*w)->append({images[i % images.size()], "a caption of some forty bytes, give or take",
                        tokens, static_cast<int32_t>(i % 10)}));
    }
    die_unless((*w)->finish());
  }
  const double write_s = seconds_since(t0);
  const double mb = n * image_bytes / 1e6;
  const double file_mb = std::filesystem::file_size(path) / 1e6;

  auto r = ShardReader::open(path);
  die_unless(r.status());
  t0 = std::chrono::steady_clock::now();
  for (int64_t first = 0; first < n; first += 256)
    die_unless((*r)->read(first, std::min<int64_t>(256, n - first)).status());
  const double seq_s = seconds_since(t0);

  auto fresh = ShardReader::open(path);  // a cold chunk cache for the random reads
  die_unless(fresh.status());
  const int64_t reads = std::min<int64_t>(n, 1000);
  t0 = std::chrono::steady_clock::now();
  for (int64_t k = 0; k < reads; ++k) die_unless((*fresh)->read(rng() % n, 1).status());
  const double rand_s = seconds_since(t0);

  std::printf("| %3lldx%-3lld | %4lld | %s | %6.1f | %7.0f | %7.0f | %8.0f | %6.1f |\n",
              static_cast<long long>(resolution), static_cast<long long>(resolution),
              static_cast<long long>(chunk), gzip ? absl::StrCat("gzip-", gzip).c_str() : "none  ",
              file_mb, mb / write_s, mb / seq_s, reads / rand_s,
              reads * image_bytes / 1e6 / rand_s);
  std::filesystem::remove(path);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/tmp";
  std::printf(
      "| image | chunk (samples) | compression | file MB | write MB/s | sequential read MB/s "
      "| random 1-sample reads/s | random MB/s |\n|---|---|---|---|---|---|---|---|\n");
  for (int64_t chunk : {16, 64, 256}) run(dir, 64, 8192, chunk, 0);
  run(dir, 64, 8192, 64, 1);
  for (int64_t chunk : {5, 16, 64}) run(dir, 256, 512, chunk, 0);
  return 0;
}
