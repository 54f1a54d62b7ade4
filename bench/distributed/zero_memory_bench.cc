// Per-rank memory of the ZeRO stages, from the buffers the trainer would allocate (no steps run):
//
//   mpirun -np R build/bench/distributed/bench_zero_memory CONFIG [--set path=value ...]
//
// Each rank builds the model of CONFIG on its tensor-parallel group (parameters and gradients
// allocated and initialised, so their pages are resident), the optimizer of parallel.zero_stage
// (make_optimizer: AdamW, or ZeroAdamW's shards) and its GradSync. Then every rank prints one
// JSON line: the bytes of parameters, gradients (the full buffer, the averaged shard), optimizer
// state, their sum, and the resident set size (RSS, /proc/self/statm) of the whole process, which
// also holds the binary, MPI and the allocator's slack.
// scripts/bench_zero runs it at 1, 2 and 4 ranks (bench/peer/bench_zero.py).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "distributed/grad_sync.h"
#include "distributed/layout.h"
#include "distributed/make_communicator.h"
#include "distributed/mpi_communicator.h"
#include "models/factory.h"
#include "nlohmann/json.hpp"
#include "train/config.h"
#include "train/optimizer.h"
#include "train/run_report.h"

namespace tessera {
namespace {

int run(const std::string& config_path, const std::vector<std::string>& sets) {
  absl::StatusOr<config::Config> loaded = train::load_config(config_path, sets);
  TESSERA_CHECK(loaded.ok(), loaded.status().message());
  const config::Config& cfg = *loaded;
  auto world = distributed::make_world_communicator(Device::cpu());
  const distributed::ParallelLayout layout(*world, cfg.parallel().tensor_parallel());
  auto model =
      models::make_model(cfg.model(), layout.tp_size() > 1 ? &layout.tp() : nullptr, Device::cpu());
  models::ParamStore& store = model->params();
  store.init(cfg.train().seed());
  auto optimizer = train::make_optimizer(store, cfg, layout);
  // The gradient sync as the trainer builds it (plain DP: no buffers of its own; ZeRO: the
  // reduce-scatter's padding staging).
  std::unique_ptr<distributed::GradSync> sync;
  if (layout.dp_size() > 1) {
    sync = optimizer->make_grad_sync(layout.dp(), cfg.parallel().bucket_bytes());
  }
  const int64_t params = static_cast<int64_t>(store.params().nbytes());
  const int64_t grads_full = static_cast<int64_t>(store.grads().nbytes());
  const int64_t shard = optimizer->buffer_bytes();  // ZeRO: shard_grads (+ padding staging)
  const int64_t state = optimizer->state_bytes();
  nlohmann::json j;
  j["rank"] = world->rank();
  j["ranks"] = world->size();
  j["dp"] = layout.dp_size();
  j["tp"] = layout.tp_size();
  j["zero_stage"] = optimizer->zero_stage();
  j["parameters"] = store.numel();
  j["param_bytes"] = params;
  j["grad_full_bytes"] = grads_full;
  j["grad_shard_bytes"] = shard;
  j["optimizer_bytes"] = state;
  j["total_bytes"] = params + grads_full + shard + state;
  j["rss_bytes"] = train::current_rss_bytes();
  world->barrier()->wait();  // every rank allocated before anyone prints or exits
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
  world->barrier()->wait();
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    std::fprintf(stderr, "usage: mpirun -np R %s CONFIG [--set path=value ...]\n", argv[0]);
    return 2;
  }
  std::vector<std::string> sets;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
      sets.push_back(argv[++i]);
    } else {
      std::fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[i]);
      return 2;
    }
  }
  tessera::distributed::MpiEnvironment mpi(&argc, &argv);
  return tessera::distributed::run_or_abort([&] { return tessera::run(argv[1], sets); });
}
