// `tessera train`: the config, the world of ranks, and one Trainer on it (train/trainer.h).

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
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
    Trainer trainer(cfg, run_dir, opt.quiet);
    trainer.set_resume(opt.resume);
    return trainer.run();
  }
  // Several ranks: a rank that fails inside a step prints its error once and aborts the job, so
  // no other rank waits forever in a collective (docs/DESIGN.md decision 7).
  distributed::MpiEnvironment mpi;
  return distributed::run_or_abort([&] {
    // CPU: MPI. CUDA: NCCL for device tensors, MPI for host values (routed_communicator.h).
    distributed::CommunicatorOptions comm_options;
    comm_options.timeout_s = cfg.parallel().collective_timeout_s();
    auto world = distributed::make_world_communicator(training_device(cfg), comm_options);
    Trainer trainer(cfg, run_dir, opt.quiet, world.get());
    trainer.set_resume(opt.resume);
    return trainer.run();
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
