#pragma once
// Loading a run configuration: built-in defaults, then the user's file (protobuf text format),
// then `--set PATH=VALUE` overrides, then validation. Every error names the file (and line where
// the field was written), or the --set argument, and the field path.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/config.pb.h"

namespace tessera::train {

absl::StatusOr<config::Config> load_config(const std::string& path,
                                           const std::vector<std::string>& overrides = {});

// As load_config, for text already in memory; `source_name` stands for the file in messages.
absl::StatusOr<config::Config> parse_config(const std::string& text, const std::string& source_name,
                                            const std::vector<std::string>& overrides = {});

// Applies one "a.b.c=VALUE" override (scalars and enums, by name or number).
absl::Status apply_override(config::Config* config, const std::string& assignment);

// The resolved config as text, as written to RUN_DIR/config.pbtxt.
std::string config_to_text(const config::Config& config);

// ZeRO-3 on CUDA (parallel.zero_stage 3 with train.device CUDA) is refused at load until its NCCL
// path has run on a GPU; a validation run opts in by setting this environment variable to 1
// (docs/DISTRIBUTED.md "Stage 3").
inline constexpr char kZero3CudaValidationEnv[] = "TESSERA_ZERO3_CUDA_VALIDATION";
bool zero3_cuda_validation_enabled();  // the variable is set to "1"

}  // namespace tessera::train
