// Checkpoint save and load bandwidth per writing rank against raw write/read of the same bytes
// (POSIX write + fsync, read) in the same run and directory, and the training stall of an async
// save against the synchronous save time.
//
// Run (any number of ranks; 2 by default in scripts/bench_checkpoint):
//   ninja -C build bench_checkpoint
//   OMP_NUM_THREADS=1 mpirun --oversubscribe -np 2 build/bench/checkpoint/bench_checkpoint
//     [--config configs/bench/gpt.pbtxt] [--dir DIR] [--reps 10] [--set PATH=VALUE ...]
//
// Save time = Checkpointer::save (files, fsyncs, barriers, metadata, commit, rename), divided
// into the payload bytes (parameters + Adam m + v) of rank 0, which writes its whole share. Raw:
// the same bytes with write(2) + fsync into the same directory. Load = open_checkpoint +
// load_model_parameters + load_moments on every rank (each reads its part); raw read: read(2) of
// the raw file. Both reads come from the page cache (the files were just written): the figure
// compares tessera's overhead (HDF5, Fletcher32, hyperslabs), not the disk. Async: the time
// Checkpointer::save blocks the caller (host copy), against the synchronous save time. Text,
// then one JSON line.
//
// Each figure is the best of --reps repetitions (default 10). On a machine shared with other
// jobs the wall-clock ratios swing by tens of percent between runs (a rank waits for a core), so
// the bench also gives each phase's CPU time on rank 0 (CLOCK_PROCESS_CPUTIME_ID, best of the
// reps): for loads from the page cache, which are CPU work, that ratio is the steadier one;
// for saves it leaves out the time fsync waits for the disk.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/timer.h"
#include "distributed/layout.h"
#include "distributed/mpi_communicator.h"
#include "models/factory.h"
#include "nlohmann/json.hpp"
#include "train/config.h"
#include "train/optimizer.h"

using namespace tessera;

namespace {

// This process's CPU time in seconds (all threads).
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// The best (smallest) CPU time of the repetitions of one phase.
struct BestCpu {
  double cpu = 1e30;
  void add(double c) { cpu = std::min(cpu, c); }
};

double raw_write(const std::string& path, const std::vector<const Tensor*>& parts) {
  Timer t;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  TESSERA_CHECK(fd >= 0, path, ": cannot create");
  for (const Tensor* p : parts) {
    const char* b = static_cast<const char*>(p->raw_data());
    size_t left = p->nbytes();
    while (left > 0) {
      const ssize_t n = ::write(fd, b, left);
      TESSERA_CHECK(n > 0, path, ": write failed");
      b += n;
      left -= size_t(n);
    }
  }
  TESSERA_CHECK(::fsync(fd) == 0, path, ": fsync failed");
  ::close(fd);
  return t.seconds();
}

double raw_read(const std::string& path, std::vector<char>& buf) {
  Timer t;
  const int fd = ::open(path.c_str(), O_RDONLY);
  TESSERA_CHECK(fd >= 0, path, ": cannot open");
  size_t at = 0;
  while (at < buf.size()) {
    const ssize_t n = ::read(fd, buf.data() + at, buf.size() - at);
    TESSERA_CHECK(n > 0, path, ": read failed");
    at += size_t(n);
  }
  ::close(fd);
  return t.seconds();
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "configs/bench/gpt.pbtxt", dir = "/tmp/tessera_bench_checkpoint";
  std::vector<std::string> sets;
  int reps = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--config") config_path = argv[i + 1];
    if (a == "--dir") dir = argv[i + 1];
    if (a == "--reps") reps = std::max(1, std::atoi(argv[i + 1]));
    if (a == "--set") sets.push_back(argv[i + 1]);
  }
  distributed::MpiEnvironment mpi;
  auto world = distributed::MpiCommunicator::world({});
  auto cfg_or = train::load_config(config_path, sets);
  if (!cfg_or.ok()) {
    std::fprintf(stderr, "%s\n", std::string(cfg_or.status().message()).c_str());
    return 1;
  }
  config::Config cfg = *cfg_or;
  cfg.mutable_checkpoint()->set_keep_last(1);
  distributed::ParallelLayout layout(*world, cfg.parallel().tensor_parallel());
  auto model = models::make_model(cfg.model(), layout.tp_size() > 1 ? &layout.tp() : nullptr);
  models::ParamStore& params = model->params();
  params.init(cfg.train().seed());
  train::AdamW adamw(params, cfg.optim());
  copy(params.params(), adamw.m());  // any values: the bytes are what is timed
  copy(params.params(), adamw.v());
  const checkpoint::MomentsRef moments{adamw.m(), adamw.v(), nullptr};
  const int rank = layout.world_rank();
  const bool writer = layout.dp_rank() == 0;
  if (rank == 0) std::filesystem::remove_all(dir);
  world->barrier()->wait();
  const double payload = 3.0 * double(params.params().nbytes());  // this rank's share

  BestCpu save_cpu, raw_w_cpu, raw_r_cpu, load_cpu;
  auto save_loop = [&](bool async, double* blocked_s, double* total_s) {
    cfg.mutable_checkpoint()->set_async(async);
    checkpoint::Checkpointer ck(cfg, dir + (async ? "/async" : "/sync"), layout, false);
    checkpoint::TrainProgress p;
    double blocked = 1e30, total = 1e30;
    for (int r = 0; r < reps; ++r) {
      p.step = r + 1;
      world->barrier()->wait();
      const double c0 = cpu_seconds();
      Timer t;
      ck.save(params, moments, p);
      const double b = t.seconds();
      ck.finish();
      if (!async) save_cpu.add(cpu_seconds() - c0);
      world->barrier()->wait();
      blocked = std::min(blocked, b);
      total = std::min(total, t.seconds());
    }
    *blocked_s = blocked;
    *total_s = total;
  };
  double sync_s = 0, sync_total = 0, stall_s = 0, async_total = 0;
  save_loop(false, &sync_s, &sync_total);
  save_loop(true, &stall_s, &async_total);

  // Raw write / read of the same bytes by the same ranks.
  // Every rank reads the raw file of the writer of its TP shard (world rank tp_rank), as every
  // rank loads its whole share of the checkpoint.
  const std::string raw = dir + "/raw_rank" + std::to_string(rank) + ".bin";
  const std::string raw_src = dir + "/raw_rank" + std::to_string(layout.tp_rank()) + ".bin";
  double raw_w = 1e30, raw_r = 1e30, load_s = 1e30;
  std::vector<char> buf(static_cast<size_t>(payload));
  for (int r = 0; r < reps; ++r) {
    world->barrier()->wait();
    double c0 = cpu_seconds();
    if (writer) raw_w = std::min(raw_w, raw_write(raw, {&params.params(), &adamw.m(), &adamw.v()}));
    raw_w_cpu.add(cpu_seconds() - c0);
    world->barrier()->wait();
    c0 = cpu_seconds();
    raw_r = std::min(raw_r, raw_read(raw_src, buf));
    raw_r_cpu.add(cpu_seconds() - c0);
    world->barrier()->wait();
    c0 = cpu_seconds();
    Timer t;
    auto info = checkpoint::open_checkpoint(dir + "/sync");
    TESSERA_CHECK(info.ok(), info.status().ToString());
    absl::Status s = checkpoint::load_model_parameters(*info, params);
    if (s.ok()) s = checkpoint::load_moments(*info, params, moments);
    TESSERA_CHECK(s.ok(), s.ToString());
    load_s = std::min(load_s, t.seconds());
    load_cpu.add(cpu_seconds() - c0);
  }
  world->barrier()->wait();
  if (rank == 0) {
    const double mb = payload / 1e6;
    nlohmann::json j = {
        {"bench", "checkpoint"},
        {"config", config_path},
        {"ranks", layout.world_size()},
        {"layout", layout.describe()},
        {"payload_mb_per_rank", mb},
        {"save_mb_s", mb / sync_s},
        {"raw_write_mb_s", mb / raw_w},
        {"save_vs_raw", raw_w / sync_s},
        {"load_mb_s", mb / load_s},
        {"raw_read_mb_s", mb / raw_r},
        {"load_vs_raw", raw_r / load_s},
        {"sync_save_ms", sync_s * 1e3},
        {"async_stall_ms", stall_s * 1e3},
        {"async_total_ms", async_total * 1e3},
        {"stall_vs_sync", stall_s / sync_s},
        {"save_cpu_ms", save_cpu.cpu * 1e3},
        {"raw_write_cpu_ms", raw_w_cpu.cpu * 1e3},
        {"load_cpu_ms", load_cpu.cpu * 1e3},
        {"raw_read_cpu_ms", raw_r_cpu.cpu * 1e3},
        {"load_vs_raw_cpu", raw_r_cpu.cpu / load_cpu.cpu},
    };
    std::printf("checkpoint bench: %s, %s, %d reps (best of), %.1f MB per writing rank\n",
                config_path.c_str(), layout.describe().c_str(), reps, mb);
    std::printf("  save  %8.1f MB/s   raw write+fsync %8.1f MB/s   -> %.0f %% of raw\n",
                mb / sync_s, mb / raw_w, 100 * raw_w / sync_s);
    std::printf("  load  %8.1f MB/s   raw read        %8.1f MB/s   -> %.0f %% of raw\n",
                mb / load_s, mb / raw_r, 100 * raw_r / load_s);
    std::printf(
        "  rank 0 CPU time: save %.1f ms, raw write+fsync %.1f ms; load %.1f ms, raw read "
        "%.1f ms -> %.0f %% of raw\n",
        save_cpu.cpu * 1e3, raw_w_cpu.cpu * 1e3, load_cpu.cpu * 1e3, raw_r_cpu.cpu * 1e3,
        100 * raw_r_cpu.cpu / load_cpu.cpu);
    std::printf("  async save: training stalled %.1f ms vs %.1f ms synchronous (%.1f %%)\n",
                stall_s * 1e3, sync_s * 1e3, 100 * stall_s / sync_s);
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}
