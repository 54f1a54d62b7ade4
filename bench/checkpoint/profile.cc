// Loads or saves a checkpoint N times in one process, for profiling one path alone:
//   perf record -g build/bench/checkpoint/checkpoint_profile load CONFIG CHECKPOINT N
//   perf record -g build/bench/checkpoint/checkpoint_profile save CONFIG DIR N
// load: CHECKPOINT is a step or run directory (e.g. one bench_checkpoint left in
// /tmp/tessera_bench_checkpoint/sync) written for CONFIG's model, loaded without tensor
// parallelism; prints the first loads' phases. save: rank 0's files of CONFIG's model with its
// Adam moments, written into DIR (emptied first) each time. Both print the best wall and CPU time.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>

#include "checkpoint/checkpoint.h"
#include "checkpoint/write.h"
#include "core/timer.h"
#include "models/factory.h"
#include "train/config.h"
#include "train/optimizer.h"

using namespace tessera;

namespace {

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc == 5 ? argv[1] : "";
  if (mode != "load" && mode != "save") {
    std::fprintf(stderr, "usage: %s load CONFIG CHECKPOINT N | save CONFIG DIR N\n", argv[0]);
    return 1;
  }
  auto cfg = train::load_config(argv[2], {});
  TESSERA_CHECK(cfg.ok(), cfg.status().ToString());
  auto model = models::make_model(cfg->model(), nullptr);
  models::ParamStore& params = model->params();
  params.init(1);
  train::AdamW adamw(params, cfg->optim());
  const std::string path = argv[3];
  const int n = std::atoi(argv[4]);
  const double mb = 3.0 * double(params.params().nbytes()) / 1e6;  // parameters, m and v
  double best = 1e30, total = 0, cpu_best = 1e30;
  if (mode == "save") {
    copy(params.params(), adamw.m());
    copy(params.params(), adamw.v());
  }
  const checkpoint::detail::RankState state{
      &params, params.params(), {adamw.m(), adamw.v(), nullptr}};
  for (int i = 0; i < n; ++i) {
    if (mode == "save") {
      std::filesystem::remove_all(path);
      std::filesystem::create_directories(path);
    }
    const double c0 = cpu_seconds();
    Timer t;
    if (mode == "save") {
      checkpoint::detail::write_rank_files(path, state, 0, 0, 0);
    } else {
      auto info = checkpoint::open_checkpoint(path);
      TESSERA_CHECK(info.ok(), info.status().ToString());
      const double t_open = t.seconds();
      absl::Status s = checkpoint::load_model_parameters(*info, params);
      const double t_params = t.seconds();
      if (s.ok()) s = checkpoint::load_moments(*info, params, state.moments);
      TESSERA_CHECK(s.ok(), s.ToString());
      if (i < 3)
        std::printf("open %.1f ms, params %.1f ms, moments %.1f ms\n", t_open * 1e3,
                    (t_params - t_open) * 1e3, (t.seconds() - t_params) * 1e3);
    }
    const double sec = t.seconds();
    cpu_best = std::min(cpu_best, cpu_seconds() - c0);
    best = std::min(best, sec);
    total += sec;
  }
  std::printf("%s %.1f MB: best %.1f ms (%.0f MB/s), mean %.1f ms, best cpu %.1f ms\n",
              mode.c_str(), mb, best * 1e3, mb / best, total / n * 1e3, cpu_best * 1e3);
}
