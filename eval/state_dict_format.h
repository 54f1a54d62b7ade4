#pragma once
// `tessera import/export --format timm|open_clip`: tessera runs <-> one safetensors file holding
// another library's state dict under its own names. timm: ViT classifier <-> timm's
// VisionTransformer (eval/timm_vit.h). open_clip: CLIP <-> open_clip's CLIP (eval/open_clip.h).
// A state dict holds no config: what its shapes do not give comes from the base config and
// --set (each import names what it needs).

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "checkpoint/checkpoint.h"
#include "proto/config.pb.h"

namespace tessera::eval {

// FILE (safetensors) -> a tessera run directory with config.pbtxt and a step-0 checkpoint, as
// import_hf. `format` is "timm" or "open_clip"; `base` gives the settings the shapes do not
// (e.g. model.vit.transformer.n_heads), then `overrides` (--set) apply.
absl::Status import_state_dict(const std::string& format, const std::string& file,
                               const std::string& run_dir, config::Config base,
                               const std::vector<std::string>& overrides = {});

// A ViT-classifier (timm) or CLIP (open_clip) checkpoint -> OUT_FILE (safetensors).
// weights: "raw" or "ema", as export_hf (eval/hf_format.h).
absl::Status export_state_dict(const std::string& format, const checkpoint::CheckpointInfo& ckpt,
                               const std::string& out_file, const std::string& weights = "raw");

}  // namespace tessera::eval
