#pragma once
// `tessera import --format hf` and `tessera export --format hf`: tessera runs <-> Hugging Face
// model directories (config.json + model.safetensors, as save_pretrained writes them and
// from_pretrained reads them). GPT <-> GPT2LMHeadModel (eval/hf_gpt2.h), ViT classifier <->
// ViTForImageClassification (eval/hf_vit.h), CLIP <-> CLIPModel (eval/hf_clip.h).

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "checkpoint/checkpoint.h"
#include "models/param_store.h"
#include "proto/config.pb.h"

namespace tessera::eval {

// HF_DIR -> a tessera run directory with config.pbtxt and a checkpoint at step 0 (zero optimizer
// state) that eval, generate, export, train --resume and init.checkpoint read. The model comes
// from config.json's model_type ("gpt2", "vit", "clip"); `base` (may be empty) gives the other
// settings, then `overrides` (--set) apply. Errors name the file and every field or tensor at
// fault.
absl::Status import_hf(const std::string& hf_dir, const std::string& run_dir, config::Config base,
                       const std::vector<std::string>& overrides = {});

// What every import ends with: RUN_DIR/config.pbtxt (`cfg`) and a step-0 checkpoint of `params`
// with zero optimizer state. Throws on checkpoint I/O errors like the Checkpointer.
absl::Status write_imported_run(const config::Config& cfg, models::ParamStore& params,
                                const std::string& run_dir);

// A GPT, ViT-classifier or CLIP checkpoint -> OUT_DIR/config.json + OUT_DIR/model.safetensors.
// weights: "raw" (the trained parameters) or "ema" (their moving average; eval/load.h
// resolve_weights turns --weights auto into one of the two).
absl::Status export_hf(const checkpoint::CheckpointInfo& ckpt, const std::string& out_dir,
                       const std::string& weights = "raw");

}  // namespace tessera::eval
