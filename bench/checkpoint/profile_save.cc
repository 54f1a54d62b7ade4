// Writes one rank's checkpoint files (ckpt::write_rank_files: HDF5 file, checksums, fsync,
// manifest) N times in one process, for profiling the save path alone:
//   perf record -g build/bench/checkpoint/checkpoint_profile_save CONFIG DIR N
// DIR is removed and recreated each time. Prints the best wall and CPU time.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>

#include "core/timer.h"
#include "models/factory.h"
#include "train/checkpoint_write.h"
#include "train/config.h"
#include "train/optimizer.h"

using namespace tessera;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s CONFIG DIR N\n", argv[0]);
    return 2;
  }
  auto cfg = train::load_config(argv[1], {});
  TESSERA_CHECK(cfg.ok(), cfg.status().ToString());
  auto model = models::make_model(cfg->model(), nullptr);
  models::ParamStore& params = model->params();
  params.init(1);
  train::AdamW adamw(params, cfg->optim());
  copy(params.params(), adamw.m());
  copy(params.params(), adamw.v());
  train::ckpt::RankState st{&params, params.params(), {adamw.m(), adamw.v(), nullptr}};
  const std::string dir = argv[2];
  const int n = std::atoi(argv[3]);
  auto cpu = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
  };
  double best = 1e30, cbest = 1e30;
  for (int i = 0; i < n; ++i) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const double c0 = cpu();
    Timer t;
    train::ckpt::write_rank_files(dir, st, 0, 0, 0);
    best = std::min(best, t.seconds());
    cbest = std::min(cbest, cpu() - c0);
  }
  const double mb = 3.0 * params.params().nbytes() / 1e6;
  std::printf("save %.1f MB: best %.1f ms (%.0f MB/s), best cpu %.1f ms\n", mb, best * 1e3,
              mb / best, cbest * 1e3);
}
