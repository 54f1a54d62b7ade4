// Per-rank memory of the ZeRO stages:
//
//   mpirun -np R build/bench/distributed/bench_zero_memory CONFIG [--tokens T] [--set path=value
//   ...]
//
// Each rank builds the model of CONFIG on its tensor-parallel group (parameters allocated and
// initialised, so their pages are resident; at stage 3 only this rank's shard, as the trainer
// starts), the optimizer of parallel.zero_stage
// (make_optimizer: AdamW, or ZeroAdamW's shards) and its GradSync, as the trainer does. For a GPT
// config (--tokens T > 0, default 64) it then runs one training step on one sequence of T random
// tokens per rank (forward, backward with the gradient sync overlapped, optimizer step), so the
// gradient bytes are MEASURED: the most gradient storage resident at once during that step
// (models::ParamStore::grad_bytes_peak(): the flat buffer at stages 0/1, the staged per-parameter
// gradients at stages 2 and 3) and at stage 3 the parameter bytes too (this rank's shard plus
// the gathered units' peak, models::ParamStore::gathered_bytes_peak()). T is short on purpose:
// activations are not what this measures, and a 1024-token step of gpt2_124m on four ranks of a
// shared 2-core machine would take minutes. Then every rank prints one JSON line: the bytes of
// parameters, gradients (peak resident, the averaged shard, GradSync's staging slots), optimizer
// state, their sum, and the resident set size (RSS, /proc/self/statm) of the whole process, which
// also holds the binary, MPI, the activations and the allocator's slack. scripts/bench_zero runs it
// at 1, 2 and 4 ranks (bench/peer/bench_zero.py).

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/philox.h"
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

// One GPT sequence of `tokens` random ids (same on every rank: only memory is measured).
models::Batch random_gpt_batch(const config::Config& cfg, int64_t tokens) {
  Tensor t = Tensor::empty({1, tokens}, DType::i32), y = Tensor::empty({1, tokens}, DType::i32);
  const uint32_t vocab = uint32_t(cfg.model().gpt().vocab_size());
  for (int64_t i = 0; i < tokens; ++i) {
    t.data<int32_t>()[i] = int32_t(philox_block(7, 1, uint64_t(i)).v[0] % vocab);
    y.data<int32_t>()[i] = int32_t(philox_block(7, 2, uint64_t(i)).v[0] % vocab);
  }
  return {{"tokens", t}, {"targets", y}};
}

int run(const std::string& config_path, const std::vector<std::string>& sets, int64_t tokens) {
  absl::StatusOr<config::Config> loaded = train::load_config(config_path, sets);
  TESSERA_CHECK(loaded.ok(), loaded.status().message());
  const config::Config& cfg = *loaded;
  auto world = distributed::make_world_communicator(Device::cpu());
  const distributed::ParallelLayout layout(*world, cfg.parallel().tensor_parallel());
  auto model =
      models::make_model(cfg.model(), layout.tp_size() > 1 ? &layout.tp() : nullptr, Device::cpu());
  models::ParamStore& store = model->params();
  // As the trainer: bf16 compute keeps a bf16 shadow (stages 0-2) or gathers bf16 (stage 3).
  if (cfg.train().precision() == config::TrainConfig::BF16) store.set_compute_dtype(DType::bf16);
  store.set_slice_bytes(cfg.parallel().vocab_slice_bytes());  // as the trainer does (CPU)
  auto optimizer = train::make_optimizer(store, cfg, layout);
  // As the trainer starts (train/trainer.cc): stages 2 and 3 stage the gradients before anything
  // allocates the flat gradient buffer; stage 3 shards the parameters before any value exists and
  // initialises only this rank's ranges (the full buffer is never allocated); the others
  // initialise the full buffer.
  if (optimizer->zero_stage() >= 2) store.stage_grads();
  if (optimizer->zero_stage() == 3) {
    store.shard_params(&layout.dp(), *optimizer->zero_shards());
    store.init_shards(cfg.train().seed());
    store.set_auto_gather(true);
    store.reset_gathered_peak();
  } else {
    store.init(cfg.train().seed());
  }
  // The gradient sync as the trainer builds it, after sharding.
  std::unique_ptr<distributed::GradSync> sync;
  if (layout.dp_size() > 1) {
    sync = optimizer->make_grad_sync(layout.dp(), cfg.parallel().bucket_bytes());
    store.set_grad_ready_hook([&](int64_t ready) { sync->on_ready(ready); });
    if (cfg.parallel().reduce_tied_grad_early() && sync->staged()) {
      store.set_grad_partial_hook([&](models::ParamId id) {
        sync->reduce_partial(store.info(id).offset, store.hand_over_grad(id));
      });
    }
  }
  const bool step = tokens > 0 && cfg.model().has_gpt();
  if (step) {
    const models::Batch batch = random_gpt_batch(cfg, tokens);
    store.zero_grads();
    store.reset_grad_peak();
    if (sync) sync->begin_micro_batch(0, 1);
    store.reset_grad_progress();
    model->forward_backward(batch, 1.0f);
    if (sync) sync->finish();
    if (store.params_sharded()) store.release_all();
    optimizer->step(1e-4);
  }
  // ZeRO-3: this rank's shard plus the most gathered unit bytes resident at once during the step
  // (measured), else the full buffer.
  const int64_t gathered = store.params_sharded() ? store.gathered_bytes_peak() : 0;
  const int64_t params = store.params_sharded()
                             ? static_cast<int64_t>(store.param_shards().nbytes()) + gathered
                             : static_cast<int64_t>(store.params().nbytes());
  // Measured over the step, or (no step) what is allocated now.
  const int64_t grads = step ? store.grad_bytes_peak() : store.grad_bytes_live();
  const int64_t shard = optimizer->buffer_bytes();  // ZeRO: shard_grads (+ padding staging)
  const int64_t staging = sync ? sync->buffer_bytes() : 0;
  const int64_t state = optimizer->state_bytes();
  nlohmann::json j;
  j["rank"] = world->rank();
  j["ranks"] = world->size();
  j["dp"] = layout.dp_size();
  j["tp"] = layout.tp_size();
  j["zero_stage"] = optimizer->zero_stage();
  j["parameters"] = store.numel();
  j["step_tokens"] = step ? tokens : 0;
  j["grads_staged"] = store.grads_staged();
  j["param_bytes"] = params;
  j["param_gathered_peak_bytes"] = gathered;  // ZeRO-3 (part of param_bytes)
  j["grad_full_bytes"] = grads;               // peak resident gradients (name kept for the script)
  j["grad_shard_bytes"] = shard + staging;
  j["optimizer_bytes"] = state;
  j["total_bytes"] = params + grads + shard + staging + state;
  j["rss_bytes"] = train::current_rss_bytes();
  j["rss_peak_bytes"] = train::peak_rss_bytes();  // start-up included
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
    std::fprintf(stderr, "usage: mpirun -np R %s CONFIG [--tokens T] [--set path=value ...]\n",
                 argv[0]);
    return 2;
  }
  std::vector<std::string> sets;
  int64_t tokens = 64;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
      sets.push_back(argv[++i]);
    } else if (std::strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
      tokens = std::stoll(argv[++i]);
    } else {
      std::fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[i]);
      return 2;
    }
  }
  tessera::distributed::MpiEnvironment mpi(&argc, &argv);
  return tessera::distributed::run_or_abort([&] { return tessera::run(argv[1], sets, tokens); });
}
