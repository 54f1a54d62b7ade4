#pragma once
// Hugging Face ViT interop: tessera's ViT classifier <-> transformers' ViTForImageClassification
// directory (config.json + model.safetensors), for `tessera import/export --format hf`.
//
// The same model: pre-LN blocks with biases, a class token, learned positions, the class token's
// row after the final LayerNorm into the classifier. hidden_act and layer_norm_eps (HF's
// defaults: erf GELU, eps 1e-12) become model.vit.transformer.activation / layer_norm_eps
// (eval/hf_transformer.h); an activation tessera has no kernel for is refused naming it. Layout:
//   vit.embeddings.cls_token (1, 1, d)              <-> cls_token.weight (1, d)
//   vit.embeddings.position_embeddings (1, 1+N, d)  <-> pos_emb.weight (1+N, d)
//   vit.embeddings.patch_embeddings.projection      <-> patch_embed.proj: conv (d, C, p, p) vs
//                                                       (d, p*p*C) in (py, px, c) order
//   vit.encoder.layer.I.attention.attention.{query,key,value}  <-> blocks.I.attn.qkv[0, 1, 2]
//   vit.encoder.layer.I.attention.output.dense      <-> blocks.I.attn.proj
//   vit.encoder.layer.I.intermediate.dense / output.dense <-> blocks.I.mlp.fc / mlp.proj
//   vit.encoder.layer.I.layernorm_before / _after   <-> blocks.I.ln1 / ln2
//   vit.layernorm, classifier                       <-> ln_f, head
// HF's images are channels first (B, C, H, W), tessera's channels last (B, H, W, C).

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "checkpoint/checkpoint.h"
#include "core/safetensors.h"
#include "models/param_store.h"
#include "nlohmann/json.hpp"
#include "proto/config.pb.h"

namespace tessera::eval {

absl::StatusOr<config::VitConfig> vit_config_from_hf(const nlohmann::json& hf,
                                                     const std::string& where);
nlohmann::json hf_config_from_vit(const config::VitConfig& vit);

// The tensors of a whole ViT classifier under ViTForImageClassification's names, and back.
NamedTensors hf_vit_tensors(const models::ParamStore& params, const config::VitConfig& vit);
absl::Status load_hf_vit(const NamedTensors& hf, models::ParamStore& params,
                         const config::VitConfig& vit, const std::string& where);

}  // namespace tessera::eval
