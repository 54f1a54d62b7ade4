#pragma once
// `tessera eval`: a checkpoint's metrics on a split, per model family (eval/clip_eval.h,
// eval/model_eval.h). The split is "val" (the run's eval.source when set, else val.pbtxt beside
// its data.source manifest), "train" (train.pbtxt there), for a run on synthetic data held-out
// (val) or training (train) positions of the synthetic stream, or the path of a manifest
// written by `tessera pack`.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "nlohmann/json.hpp"

namespace tessera::eval {

struct EvalOptions {
  std::string checkpoint;              // step, checkpoints or run directory
  std::string split = "val";           // "val", "train" or a manifest path
  std::string tokenizer;               // CLIP zero-shot: .model (default: found by hash)
  std::vector<std::string> templates;  // CLIP zero-shot prompts (default: default_templates())
  int64_t batch = 64;
  int64_t max_samples = 0;  // 0: the whole split (synthetic: 512 samples)
  int dit_buckets = 4;
  // --probe: a linear probe (eval/linear_probe.h) of the image tower (ViT, CLIP) instead of the
  // family's metrics: fitted on the train split (at most probe_train_samples, 0: all), scored
  // on `split`.
  bool probe = false;
  int64_t probe_train_samples = 0;
  Device device = Device::cpu();  // where the model runs (the batches are built on the host)
  std::string weights = "auto";   // "ema", "raw" or "auto" (eval/load.h)
};

// The metrics as a flat JSON object (metric -> number) plus "family", "checkpoint", "step",
// "split" and "weights" ("ema" or "raw"). Errors name the checkpoint, the split or the tokenizer at
// fault.
absl::StatusOr<nlohmann::json> run_eval(const EvalOptions& options);

// The rows of the printed table ("metric  value"), metrics in the object's order.
std::string format_eval_table(const nlohmann::json& result);

}  // namespace tessera::eval
