#pragma once
// Hugging Face CLIP interop: tessera's CLIP (InfoNCE) <-> transformers' CLIPModel directory,
// for `tessera import/export --format hf` (eval/hf_format.h).
//
// The same model when the image tower has model.clip.image.pre_norm (CLIP's pre_layrnorm). Each
// tower's hidden_act (HF's default: OpenAI's quick_gelu) and layer_norm_eps become its
// transformer.activation / layer_norm_eps (eval/hf_transformer.h). Differences handled by the
// map:
//   - HF's patch convolution has no bias: import loads zeros into tessera's patch bias; export
//     folds the bias into the position embeddings of the patch tokens (rows 1..N), which is
//     exact (the class token's row 0 never had it);
//   - q/k/v are separate, tessera's qkv fused (3, d, d); class_embedding is (d), tessera (1, d);
//   - HF pools the final LayerNorm's class row (post_layernorm), tessera normalises every token
//     with ln_f and pools the class row: the same numbers;
//   - the text tower pools at the end-of-text position; HF finds it from eos_token_id in the
//     input ids (tessera takes it as text_eot).

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/safetensors.h"
#include "models/param_store.h"
#include "nlohmann/json.hpp"
#include "proto/config.pb.h"

namespace tessera::eval {

absl::StatusOr<config::ClipConfig> clip_config_from_hf(const nlohmann::json& hf,
                                                       const std::string& where);
// Errors when the CLIP cannot be written as a CLIPModel (no pre_norm, SigLIP).
absl::StatusOr<nlohmann::json> hf_config_from_clip(const config::ClipConfig& clip);

NamedTensors hf_clip_tensors(const models::ParamStore& params, const config::ClipConfig& clip);
absl::Status load_hf_clip(const NamedTensors& hf, models::ParamStore& params,
                          const config::ClipConfig& clip, const std::string& where);

}  // namespace tessera::eval
