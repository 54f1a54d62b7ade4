#pragma once
// timm interop: tessera's ViT classifier <-> a state dict of timm's VisionTransformer
// (timm.models.vision_transformer, class token pooling: global_pool "token") in one safetensors
// file, for `tessera import/export --format timm`.
//
// A state dict holds no config: the shapes give the image and patch size, width, depth, MLP
// ratio, classes and whether there is a norm_pre (tessera's pre_norm); the head count must come
// from the base config or --set model.vit.transformer.n_heads. timm's defaults, exact GELU and
// LayerNorm eps 1e-6, become model.vit.transformer.activation / layer_norm_eps unless the base
// config sets them. A tensor outside this layout (LayerScale, register tokens, fc_norm, ...) is
// another architecture: refused, named. Layout (timm <-> tessera):
//   cls_token (1, 1, d)                    <-> cls_token.weight (1, d)
//   pos_embed (1, 1+N, d)                  <-> pos_emb.weight (1+N, d)
//   patch_embed.proj: conv (d, C, p, p)    <-> patch_embed.proj: (d, p*p*C) in (py, px, c)
//   norm_pre                               <-> ln_pre (pre_norm only; timm's pre_norm ViT then
//                                              has no patch bias: zero on import, folded into
//                                              the patch rows of pos_embed on export)
//   blocks.I.norm1 / norm2                 <-> blocks.I.ln1 / ln2
//   blocks.I.attn.qkv (3d, d), attn.proj   <-> blocks.I.attn.qkv, attn.proj (same [q; k; v] rows)
//   blocks.I.mlp.fc1 / fc2                 <-> blocks.I.mlp.fc / mlp.proj
//   norm, head                             <-> ln_f, head
// timm's images are channels first (B, C, H, W), tessera's channels last (B, H, W, C).

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/safetensors.h"
#include "models/param_store.h"
#include "proto/config.pb.h"

namespace tessera::eval {

// The ViT that `sd` (from file `where`) is, on top of `base` (its transformer.n_heads, and
// activation / layer_norm_eps when set). Errors name the file and every missing or odd tensor.
absl::StatusOr<config::VitConfig> vit_config_from_timm(const NamedTensors& sd,
                                                       const config::VitConfig& base,
                                                       const std::string& where);

// The tensors of a whole ViT classifier under timm's names, and back.
NamedTensors timm_vit_tensors(const models::ParamStore& params, const config::VitConfig& vit);
absl::Status load_timm_vit(const NamedTensors& sd, models::ParamStore& params,
                           const config::VitConfig& vit, const std::string& where);

}  // namespace tessera::eval
