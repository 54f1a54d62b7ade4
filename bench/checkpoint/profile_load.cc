// Loads a checkpoint N times in one process, for profiling the load path alone:
//   perf record -g build/bench/checkpoint/checkpoint_profile_load CONFIG CHECKPOINT N
// (CHECKPOINT: a step or run directory, e.g. one bench_checkpoint left in
// /tmp/tessera_bench_checkpoint/sync; CONFIG: the model it was written with, loaded without
// tensor parallelism.) Prints the first loads' phases and the best wall and CPU time.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "core/timer.h"
#include "models/factory.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/optimizer.h"

using namespace tessera;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s CONFIG CHECKPOINT N\n", argv[0]);
    return 2;
  }
  auto cfg = train::load_config(argv[1], {});
  TESSERA_CHECK(cfg.ok(), cfg.status().ToString());
  auto model = models::make_model(cfg->model(), nullptr);
  models::ParamStore& params = model->params();
  params.init(1);
  train::AdamW adamw(params, cfg->optim());
  const train::MomentsRef moments{adamw.m(), adamw.v(), nullptr};
  const int n = std::atoi(argv[3]);
  double best = 1e30, tot = 0, cpu_best = 1e30;
  auto cpu = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
  };
  for (int i = 0; i < n; ++i) {
    const double c0 = cpu();
    Timer t;
    auto info = train::open_checkpoint(argv[2]);
    TESSERA_CHECK(info.ok(), info.status().ToString());
    const double t_open = t.seconds();
    absl::Status s = train::load_model_parameters(*info, params);
    const double t_p = t.seconds();
    if (s.ok()) s = train::load_moments(*info, params, moments);
    TESSERA_CHECK(s.ok(), s.ToString());
    const double sec = t.seconds();
    cpu_best = std::min(cpu_best, cpu() - c0);
    if (i < 3)
      std::printf("open %.1f ms, params %.1f ms, moments %.1f ms\n", t_open * 1e3,
                  (t_p - t_open) * 1e3, (sec - t_p) * 1e3);
    best = std::min(best, sec);
    tot += sec;
  }
  const double mb = 3.0 * params.params().nbytes() / 1e6;
  std::printf("%.1f MB: best %.1f ms (%.0f MB/s), mean %.1f ms, best cpu %.1f ms\n", mb, best * 1e3,
              mb / best, tot / n * 1e3, cpu_best * 1e3);
}
