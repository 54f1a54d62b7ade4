#pragma once
// open_clip interop: tessera's CLIP (InfoNCE, image pre_norm) <-> a state dict of open_clip's
// CLIP (open_clip.model.CLIP with its VisionTransformer and text transformer) in one
// safetensors file, for `tessera import/export --format open_clip`.
//
// open_clip's CLIP is Hugging Face's CLIPModel under other names (OpenAI's layout), so the
// mapping renames to and from eval/hf_clip.h's names, with two layout changes: the attention's
// fused in_proj (3d, d) is HF's q/k/v, and open_clip's projections are (width, embed) matrices
// applied as x @ proj, the transpose of HF's (embed, width) Linear weights. Names (open_clip <->
// tessera):
//   visual.conv1 (no bias), visual.class_embedding, visual.positional_embedding
//                                      <-> image.patch_embed.proj (bias folded into the
//                                          positions on export, zero on import; see hf_clip.h),
//                                          image.cls_token, image.pos_emb
//   visual.ln_pre / ln_post, visual.proj         <-> image.ln_pre / ln_f, image.proj (transposed)
//   [visual.]transformer.resblocks.I.ln_1 / ln_2 <-> [image|text].blocks.I.ln1 / ln2
//   ....attn.in_proj_weight / _bias, attn.out_proj <-> ....attn.qkv, attn.proj
//   ....mlp.c_fc / c_proj                         <-> ....mlp.fc / mlp.proj
//   token_embedding, positional_embedding, ln_final, text_projection, logit_scale
//                                      <-> text.tok_emb, text.pos_emb, text.ln_f, text.proj
//                                          (transposed), logit_scale
// A state dict holds no head counts or activation: the heads come from the base config or
// --set model.clip.{image,text}.transformer.n_heads; the activation is open_clip's default
// nn.GELU (exact, GELU_ERF) unless set (QUICK_GELU for open_clip's -quickgelu models).
// open_clip pools the text at the argmax of the token ids (its end-of-text token has the
// highest id); tessera takes the end-of-text position as text_eot.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/safetensors.h"
#include "models/param_store.h"
#include "proto/config.pb.h"

namespace tessera::eval {

// The CLIP that `sd` (from file `where`) is, on top of `base` (head counts; activation and
// layer_norm_eps when set). Errors name the file and every missing, odd or unknown tensor.
absl::StatusOr<config::ClipConfig> clip_config_from_open_clip(const NamedTensors& sd,
                                                              const config::ClipConfig& base,
                                                              const std::string& where);

// Errors when the CLIP has no open_clip form (no image pre_norm, SigLIP).
absl::Status check_open_clip_exportable(const config::ClipConfig& c);

// The tensors of a whole CLIP under open_clip's names, and back.
NamedTensors open_clip_tensors(const models::ParamStore& params, const config::ClipConfig& c);
absl::Status load_open_clip(const NamedTensors& sd, models::ParamStore& params,
                            const config::ClipConfig& c, const std::string& where);

}  // namespace tessera::eval
