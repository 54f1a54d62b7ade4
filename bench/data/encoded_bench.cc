// build/bench/data/bench_encoded: the encoded-image (format version 2) data path at scale, driven
// by scripts/bench_data (which also runs the PyTorch DataLoader peer on the same bytes).
//
//   synth DIR --shards N --per-shard M --height H --width W [--distinct K] [--quality Q]
//       writes N version-2 shards of M samples (K distinct synthetic photo-like JPEGs of H x W,
//       reused round-robin; tiny captions; labels) and DIR/train.pbtxt. Prints bytes on disk.
//   first-batch MANIFEST --size S --batch B --threads T [--batches K]
//       what a rank does before its first step: load the manifest, build the sampler, start the
//       loader, get batch 0 (then K-1 more, each opening more shards). Prints, as JSON, the wall
//       time of each phase since process start (CLOCK_REALTIME at exec is taken from
//       /proc/self/stat) and the resident memory (VmRSS) after each.
//   throughput MANIFEST --size S --batch B --threads T --batches K [--warmup W] [--centre]
//       steady state: W batches untimed, then K timed; images/s by wall clock and per CPU second
//       of the process (getrusage: the loader's threads included). Random-resized-crop + flip
//       (or --centre crops), uint8 output as the peer's.
//   export MANIFEST OUT --count N
//       the first N samples' encoded bytes as OUT.bytes + OUT.offsets (int64), for the peer.
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/philox.h"
#include "data_pipeline/augment.h"
#include "data_pipeline/global_sampler.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/loader.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"

namespace tessera::data {
namespace {

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "bench_encoded: %s\n", m.c_str());
  std::exit(1);
}

std::map<std::string, std::string> flags(int argc, char** argv, int from) {
  std::map<std::string, std::string> f;
  for (int i = from; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) die("unexpected argument " + k);
    f[k] = (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) ? argv[++i] : "1";
  }
  return f;
}
int64_t num(const std::map<std::string, std::string>& f, const std::string& k, int64_t def) {
  auto it = f.find(k);
  return it == f.end() ? def : std::stoll(it->second);
}

// Seconds since this process was exec'd: /proc/self/stat field 22 (starttime, clock ticks
// after boot) against CLOCK_BOOTTIME now.
double since_start() {
  std::ifstream f("/proc/self/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(s.substr(s.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) rest >> field;
  const double start = std::stod(field) / double(sysconf(_SC_CLK_TCK));
  timespec now;
  clock_gettime(CLOCK_BOOTTIME, &now);
  return double(now.tv_sec) + now.tv_nsec * 1e-9 - start;
}

double rss_mib() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// A photo-like image: gradients, discs, texture and noise (JPEG sizes like real photos at q90).
RgbImage photo(int h, int w, uint64_t seed) {
  RgbImage im;
  im.height = h, im.width = w;
  im.pixels.resize(size_t(h) * w * 3);
  const Philox4x32 r = philox_block(seed, 1, 0);
  const double cy = r.v[0] % h, cx = r.v[1] % w,
               rad = 10 + r.v[2] % std::max(1, std::min(h, w) / 2);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const bool disc = (y - cy) * (y - cy) + (x - cx) * (x - cx) < rad * rad;
      const uint32_t n = philox_block(seed, 2, uint64_t(y) * w + x).v[0];
      for (int c = 0; c < 3; ++c) {
        double v = disc ? 60 + 60 * c
                        : 255.0 * (c == 0   ? double(x) / w
                                   : c == 1 ? double(y) / h
                                            : 0.5);
        v += 25 * std::sin((x + 2 * y) * 0.15 + c) + int(n >> (8 * c) & 31) - 16;
        im.pixels[(size_t(y) * w + x) * 3 + c] = uint8_t(std::clamp(v, 0.0, 255.0));
      }
    }
  return im;
}

int synth(const std::string& dir, const std::map<std::string, std::string>& f) {
  const int64_t shards = num(f, "--shards", 4), per = num(f, "--per-shard", 1024);
  const int h = int(num(f, "--height", 300)), w = int(num(f, "--width", 400));
  const int distinct = int(num(f, "--distinct", 256)), quality = int(num(f, "--quality", 90));
  std::filesystem::create_directories(dir);
  std::vector<std::vector<uint8_t>> pool;
  for (int i = 0; i < distinct; ++i) {
    auto j = encode_jpeg(photo(h, w, uint64_t(i)), quality);
    if (!j.ok()) die(std::string(j.status().message()));
    pool.push_back(std::move(*j));
  }
  Manifest m;
  m.set_format_version(2);
  m.set_resolution(std::max(h, w));
  m.set_split("train");
  int64_t bytes = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < shards; ++s) {
    const std::string name = absl::StrCat("train-", s, ".h5");
    ShardWriterOptions o;
    o.format_version = 2;
    o.resolution = std::max(h, w);
    o.labels = true;
    auto wr = ShardWriter::create(dir + "/" + name, o);
    if (!wr.ok()) die(std::string(wr.status().message()));
    for (int64_t i = 0; i < per; ++i) {
      const auto& jpeg = pool[size_t((s * per + i) % distinct)];
      SampleToWrite t;
      const std::string caption = absl::StrCat("photo ", i % 97);
      t.caption = caption;
      t.label = int32_t(i % 10);
      t.encoded = jpeg;
      t.height = t.original_height = h;
      t.width = t.original_width = w;
      if (auto st = (*wr)->append(t); !st.ok()) die(std::string(st.message()));
    }
    if (auto st = (*wr)->finish(); !st.ok()) die(std::string(st.message()));
    auto* info = m.add_shards();
    info->set_path(name);
    info->set_num_samples(per);
    info->set_bytes(int64_t(std::filesystem::file_size(dir + "/" + name)));
    bytes += info->bytes();
  }
  m.set_num_samples(shards * per);
  if (auto st = write_manifest(m, dir + "/train.pbtxt"); !st.ok()) die(std::string(st.message()));
  size_t jpeg_bytes = 0;
  for (const auto& p : pool) jpeg_bytes += p.size();
  std::printf(
      "{\"shards\": %lld, \"samples\": %lld, \"bytes\": %lld, \"bytes_per_sample\": %.1f, "
      "\"jpeg_bytes_mean\": %.1f, \"seconds\": %.1f}\n",
      (long long)shards, (long long)(shards * per), (long long)bytes,
      double(bytes) / (shards * per), double(jpeg_bytes) / pool.size(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

struct Source {
  Manifest manifest;
  std::vector<std::string> paths;
  std::vector<int64_t> starts;
  std::unique_ptr<GlobalSampler> sampler;
  int64_t epoch_samples = 0;
};

// What train/shard_data.cc builds: manifest, sampler (window of 8 shards), loader.
std::unique_ptr<Loader> make_loader(const std::string& manifest, int S, int64_t batch, int threads,
                                    bool random, Source* src, double* t_manifest,
                                    double* rss_manifest, double* t_sampler, double* rss_sampler) {
  auto m = load_manifest(manifest);
  if (!m.ok()) die(std::string(m.status().message()));
  src->manifest = *m;
  const std::string dir = std::filesystem::path(manifest).parent_path().string();
  DatasetShape shape;
  int64_t start = 0;
  for (const auto& s : m->shards()) {
    src->paths.push_back(dir + "/" + s.path());
    shape.shard_sizes.push_back(s.num_samples());
    src->starts.push_back(start);
    start += s.num_samples();
  }
  if (t_manifest) *t_manifest = since_start(), *rss_manifest = rss_mib();
  SamplerConfig sc;
  sc.seed = 1;
  sc.global_batch = batch;
  sc.shuffle_window = 8;
  src->sampler = std::make_unique<GlobalSampler>(shape, sc);
  src->epoch_samples = src->sampler->batches_per_epoch() * batch;
  if (t_sampler) *t_sampler = since_start(), *rss_sampler = rss_mib();
  LoaderOptions o;
  o.threads = threads;
  o.prefetch_batches = 4;
  o.stride = batch;
  o.decode.out_size = S;
  AugmentConfig crop;
  crop.random_crop = random;
  o.decode.crop = [crop, src](int64_t p, SampleRef ref, int h, int w) {
    return sample_crop(h, w, crop, {1, p / src->epoch_samples, src->starts[ref.shard] + ref.index});
  };
  return std::make_unique<Loader>(
      src->paths,
      [src](int64_t p) { return src->sampler->at(p / src->epoch_samples, p % src->epoch_samples); },
      o);
}

int first_batch(const std::string& manifest, const std::map<std::string, std::string>& f) {
  const int S = int(num(f, "--size", 224));
  const int64_t B = num(f, "--batch", 256), K = num(f, "--batches", 1);
  const double rss_exec = rss_mib(), t_exec = since_start();
  Source src;
  double tm = 0, rm = 0, ts = 0, rs = 0;
  auto loader =
      make_loader(manifest, S, B, int(num(f, "--threads", 2)), true, &src, &tm, &rm, &ts, &rs);
  auto b = loader->get(0, B);
  if (!b.ok()) die(std::string(b.status().message()));
  const double t_first = since_start(), rss_first = rss_mib();
  b->reset();
  for (int64_t k = 1; k < K; ++k)
    if (auto more = loader->get(k * B, B); !more.ok()) die(std::string(more.status().message()));
  const double t_last = since_start(), rss_last = rss_mib();
  std::printf(
      "{\"samples\": %lld, \"shards\": %d, \"at_main_s\": %.3f, \"rss_main_mib\": %.1f, "
      "\"manifest_s\": %.3f, \"rss_manifest_mib\": %.1f, \"sampler_s\": %.3f, "
      "\"rss_sampler_mib\": %.1f, \"first_batch_s\": %.3f, \"rss_first_batch_mib\": %.1f, "
      "\"batches\": %lld, \"after_batches_s\": %.3f, \"rss_after_batches_mib\": %.1f}\n",
      (long long)src.manifest.num_samples(), src.manifest.shards_size(), t_exec, rss_exec, tm, rm,
      ts, rs, t_first, rss_first, (long long)K, t_last, rss_last);
  return 0;
}

int throughput(const std::string& manifest, const std::map<std::string, std::string>& f) {
  const int S = int(num(f, "--size", 224)), T = int(num(f, "--threads", 1));
  const int64_t B = num(f, "--batch", 64), K = num(f, "--batches", 20), W = num(f, "--warmup", 3);
  Source src;
  auto loader = make_loader(manifest, S, B, T, !f.count("--centre"), &src, nullptr, nullptr,
                            nullptr, nullptr);
  for (int64_t k = 0; k < W; ++k)
    if (auto b = loader->get(k * B, B); !b.ok()) die(std::string(b.status().message()));
  const double c0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t check = 0;
  for (int64_t k = W; k < W + K; ++k) {
    auto b = loader->get(k * B, B);
    if (!b.ok()) die(std::string(b.status().message()));
    check += (*b)->images[size_t(k) % (*b)->images.size()];
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - c0;
  std::printf(
      "{\"threads\": %d, \"size\": %d, \"images\": %lld, \"wall_s\": %.3f, \"cpu_s\": %.3f, "
      "\"images_per_s\": %.1f, \"images_per_cpu_s\": %.1f, \"check\": %llu}\n",
      T, S, (long long)(B * K), wall, cpu, double(B * K) / wall, double(B * K) / cpu,
      (unsigned long long)check);
  return 0;
}

int export_bytes(const std::string& manifest, const std::string& out,
                 const std::map<std::string, std::string>& f) {
  const int64_t n = num(f, "--count", 1024);
  auto m = load_manifest(manifest);
  if (!m.ok()) die(std::string(m.status().message()));
  const std::string dir = std::filesystem::path(manifest).parent_path().string();
  std::ofstream bytes(out + ".bytes", std::ios::binary),
      offsets(out + ".offsets", std::ios::binary);
  int64_t at = 0, done = 0;
  offsets.write(reinterpret_cast<const char*>(&at), 8);
  for (const auto& s : m->shards()) {
    if (done >= n) break;
    auto r = ShardReader::open(dir + "/" + s.path());
    if (!r.ok()) die(std::string(r.status().message()));
    const int64_t take = std::min(n - done, (*r)->num_samples());
    auto rows = (*r)->read(0, take);
    if (!rows.ok()) die(std::string(rows.status().message()));
    for (int64_t i = 0; i < take; ++i) {
      auto e = rows->encoded(i);
      bytes.write(reinterpret_cast<const char*>(e.data()), std::streamsize(e.size()));
      at += int64_t(e.size());
      offsets.write(reinterpret_cast<const char*>(&at), 8);
    }
    done += take;
  }
  std::printf("{\"exported\": %lld, \"bytes\": %lld}\n", (long long)done, (long long)at);
  return 0;
}

}  // namespace
}  // namespace tessera::data

int main(int argc, char** argv) {
  using namespace tessera::data;
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_encoded synth|first-batch|throughput|export PATH ...\n");
    return 2;
  }
  const std::string verb = argv[1], path = argv[2];
  if (verb == "export") return export_bytes(path, argv[3], flags(argc, argv, 4));
  const auto f = flags(argc, argv, 3);
  if (verb == "synth") return synth(path, f);
  if (verb == "first-batch") return first_batch(path, f);
  if (verb == "throughput") return throughput(path, f);
  die("unknown verb " + verb);
}
