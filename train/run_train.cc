// `tessera train`: the config, the world of ranks, and one Trainer on it (train/trainer.h).

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <new>

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "core/preemption.h"
#include "core/threads.h"
#include "distributed/make_communicator.h"
#include "distributed/mpi_communicator.h"
#include "train/config.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

std::string default_run_dir(const std::string& config_path) {
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::gmtime(&now));
  return absl::StrCat("runs/", std::filesystem::path(config_path).stem().string(), "-", stamp);
}

// Out of memory on the host: std::bad_alloc (a std container) or the allocator's own error (which
// names the bytes it asked for and the bytes in use). Either way the message gains what to do, so
// a run past one worker's memory budget ends with advice instead of a bare "std::bad_alloc".
std::string out_of_memory_advice(const config::Config& cfg) {
  const int64_t stage = cfg.parallel().zero_stage();
  std::string advice =
      absl::StrCat(" (parallel.zero_stage is ", stage,
                   "; the start-up 'memory estimate per rank' line shows what each rank holds");
  if (stage < 3) {
    absl::StrAppend(&advice,
                    "; with several data-parallel ranks, parallel.zero_stage: 3 shards the "
                    "parameters, gradients and optimizer state over them, docs/DISTRIBUTED.md "
                    "\"Stage 3\"");
  } else {
    // Start-up builds only this rank's shard (docs/DISTRIBUTED.md "Stage 3", Start-up): more
    // ranks shrink every per-rank part but the gathered units and the activations.
    absl::StrAppend(&advice,
                    "; more data-parallel ranks make each shard smaller (the gathered units and "
                    "the activations stay)");
  }
  absl::StrAppend(&advice,
                  "; fewer tokens per micro-batch (data.global_batch_size, train.micro_batches) "
                  "or a higher memory limit (ulimit -v) also help)");
  return advice;
}

// Runs fn, rethrowing an out-of-memory failure as tessera::Error with out_of_memory_advice().
int with_memory_advice(const config::Config& cfg, const std::function<int()>& fn) {
  try {
    return fn();
  } catch (const std::bad_alloc& e) {
    throw Error(absl::StrCat("out of memory: a host allocation failed (", e.what(), ")",
                             out_of_memory_advice(cfg)));
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.find("out of memory") == std::string::npos) throw;
    throw Error(absl::StrCat(what, out_of_memory_advice(cfg)));
  }
}

int train(const TrainOptions& opt) {
  // SIGTERM / SIGUSR1: save at the next step boundary, exit 75. First, before any thread exists.
  preemption::install_stop_handlers();
  absl::StatusOr<config::Config> loaded = load_config(opt.config_path, opt.overrides);
  if (!loaded.ok()) {
    std::cerr << "tessera train: " << loaded.status().message() << "\n";
    return kExitError;
  }
  const config::Config& cfg = *loaded;
  if (cfg.train().threads() > 0) set_num_threads(cfg.train().threads());
  const std::string run_dir = opt.run_dir.empty() ? default_run_dir(opt.config_path) : opt.run_dir;

  if (!distributed::launched_by_mpi()) {
    return with_memory_advice(cfg, [&] {
      Trainer trainer(cfg, run_dir, opt.quiet);
      trainer.set_resume(opt.resume);
      return trainer.run();
    });
  }
  // Several ranks: a rank that fails inside a step prints its error once and aborts the job, so
  // no other rank waits forever in a collective (docs/DESIGN.md decision 7).
  distributed::MpiEnvironment mpi;
  return distributed::run_or_abort([&] {
    return with_memory_advice(cfg, [&] {
      // CPU: MPI. CUDA: NCCL for device tensors, MPI for host values (routed_communicator.h).
      distributed::CommunicatorOptions comm_options;
      comm_options.timeout_s = cfg.parallel().collective_timeout_s();
      std::unique_ptr<distributed::Communicator> world;
      std::unique_ptr<Trainer> trainer;
      try {
        world = distributed::make_world_communicator(training_device(cfg), comm_options);
        trainer = std::make_unique<Trainer>(cfg, run_dir, opt.quiet, world.get());
        trainer->set_resume(opt.resume);
        return trainer->run();
      } catch (...) {
        // Left alive, not destroyed: destroying them waits for this rank's collectives in flight
        // (GradSync, ZeRO-3 gathers, the communicators' threads), which the peers may never join,
        // so this rank would hang before run_or_abort prints its error. run_or_abort's MPI_Abort
        // follows in a world of several ranks and ends the process with them.
        (void)trainer.release();
        (void)world.release();
        throw;
      }
    });
  });
}

}  // namespace

int run_train(const TrainOptions& options) {
  try {
    return train(options);
  } catch (const std::exception& e) {
    std::cerr << "tessera train: " << e.what() << "\n";
    return kExitError;
  }
}

}  // namespace tessera::train
