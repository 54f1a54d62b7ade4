#include "tools/train_command.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "train/trainer.h"

namespace tessera::tools {
namespace {

constexpr const char* kUsage =
    R"(usage: tessera train --config FILE [--set PATH=VALUE ...] [--run-dir DIR] [--resume auto|CKPT]

Trains the model a config describes (protobuf text format, see configs/ and proto/config.proto).

  --config FILE       the run configuration
  --set PATH=VALUE    override one field by its dotted path, e.g. --set train.steps=100
                      --set optim.lr=1e-3 --set data.global_batch_size=16 (repeatable)
  --run-dir DIR       where config.pbtxt and metrics.jsonl go (default runs/NAME-TIME)
  --quiet             no per-step lines on stdout (metrics.jsonl is still written)
  --resume auto|CKPT  continue from a checkpoint: auto = the newest committed one in
                      RUN_DIR/checkpoints (fresh start when none), or a step, checkpoints or
                      run directory; any parallel layout loads it (checkpoint/CHECKPOINT.md)

Checkpoints: RUN_DIR/checkpoints/step_NNNNNNNN every checkpoint.every_steps and at the end.
SIGTERM or SIGUSR1: all ranks stop at the next step boundary, save, and exit with 75.

Threads: train.threads in the config, else TESSERA_NUM_THREADS, else all cores.
GPUs: --set train.device=CUDA; one rank per GPU, each on the GPU of its node-local rank.
Exit status: 0 finished; 1 error (the message names the file, field or rank);
75 stopped by a signal after saving a checkpoint (resume with --resume auto).
)";

}  // namespace

int train_command(int argc, char** argv) {
  train::TrainOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tessera train: %s needs a value\n%s", flag, kUsage);
        return nullptr;
      }
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--config") {
      const char* v = value("--config");
      if (!v) return train::kExitError;
      options.config_path = v;
    } else if (arg.rfind("--config=", 0) == 0) {
      options.config_path = arg.substr(9);
    } else if (arg == "--set") {
      const char* v = value("--set");
      if (!v) return train::kExitError;
      options.overrides.push_back(v);
    } else if (arg.rfind("--set=", 0) == 0) {
      options.overrides.push_back(arg.substr(6));
    } else if (arg == "--run-dir") {
      const char* v = value("--run-dir");
      if (!v) return train::kExitError;
      options.run_dir = v;
    } else if (arg.rfind("--run-dir=", 0) == 0) {
      options.run_dir = arg.substr(10);
    } else if (arg == "--quiet") {
      options.quiet = true;
    } else if (arg == "--resume") {
      const char* v = value("--resume");
      if (!v) return train::kExitError;
      options.resume = v;
    } else if (arg.rfind("--resume=", 0) == 0) {
      options.resume = arg.substr(9);
    } else {
      std::fprintf(stderr, "tessera train: unknown argument '%s'\n%s", arg.c_str(), kUsage);
      return train::kExitError;
    }
  }
  if (options.config_path.empty()) {
    std::fprintf(stderr, "tessera train: --config FILE is required\n%s", kUsage);
    return train::kExitError;
  }
  return train::run_train(options);
}

}  // namespace tessera::tools
