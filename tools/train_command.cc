#include "tools/train_command.h"

#include <cstdio>

#include "tools/cli_args.h"
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
  CliArgs a;
  if (!parse_cli_args("train", argc, argv, 1, {"--config", "--set", "--run-dir", "--resume"},
                      {"--quiet"}, &a)) {
    return train::kExitError;
  }
  if (a.help) return std::fputs(kUsage, stdout), 0;
  train::TrainOptions options;
  options.config_path = a.get("--config");
  if (a.values.count("--set")) options.overrides = a.values.at("--set");
  options.run_dir = a.get("--run-dir");
  options.quiet = a.has("--quiet");
  options.resume = a.get("--resume");
  if (options.config_path.empty()) {
    std::fprintf(stderr, "tessera train: --config FILE is required\n%s", kUsage);
    return train::kExitError;
  }
  return train::run_train(options);
}

}  // namespace tessera::tools
