#pragma once
// `tessera train`: argument parsing in front of train::run_train.

namespace tessera::tools {

int train_command(int argc, char** argv);  // argv[0] is "train"

}  // namespace tessera::tools
