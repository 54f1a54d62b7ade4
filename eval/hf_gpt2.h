#pragma once
// Hugging Face GPT-2 interop (`tessera import/export --format hf`, eval/hf_format.h):
// tessera's GPT <-> transformers' GPT2LMHeadModel directory (config.json + model.safetensors).
//
// The architectures are the same model: pre-LN blocks with biases everywhere, learned
// positions, causal attention scaled by 1/sqrt(head dim), a head tied to the token table or not;
// activation_function (GPT-2's "gelu_new" = tessera's default tanh GELU, or "gelu", ...) and
// layer_norm_epsilon become model.gpt.transformer.activation / layer_norm_eps
// (eval/hf_transformer.h). What differs is layout:
//   transformer.wte.weight (V, d)        <-> tok_emb.weight (Vp, d; rows >= V are padding)
//   transformer.wpe.weight (T, d)        <-> pos_emb.weight
//   transformer.h.I.ln_1 / ln_2          <-> blocks.I.ln1 / ln2
//   transformer.h.I.attn.c_attn (d, 3d)  <-> blocks.I.attn.qkv (3, d, d) = Conv1D transposed
//   transformer.h.I.attn.c_proj (d, d)   <-> blocks.I.attn.proj (transposed)
//   transformer.h.I.mlp.c_fc (d, 4d)     <-> blocks.I.mlp.fc (transposed)
//   transformer.h.I.mlp.c_proj (4d, d)   <-> blocks.I.mlp.proj (transposed)
//   transformer.ln_f                     <-> ln_f
//   lm_head.weight (V, d), untied only   <-> head.weight
// Conv1D stores (in, out); tessera's Linear (out, in) as torch.nn.Linear. The qkv columns are
// [q | k | v] with heads contiguous inside each, in both.
// A config.json whose architecture differs where tessera has no option for it (another
// activation, layer_norm_epsilon, scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn) is
// refused naming the field.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "checkpoint/checkpoint.h"
#include "core/safetensors.h"
#include "models/param_store.h"
#include "nlohmann/json.hpp"
#include "proto/config.pb.h"

namespace tessera::eval {

// config.json -> model.gpt; `where` names the file in errors.
absl::StatusOr<config::GptConfig> gpt_config_from_hf(const nlohmann::json& hf,
                                                     const std::string& where);
// model.gpt -> config.json for GPT2LMHeadModel.
nlohmann::json hf_config_from_gpt(const config::GptConfig& gpt);

// The tensors of `params` (a whole, unsplit GPT of `gpt`) under GPT2LMHeadModel's names.
NamedTensors hf_gpt2_tensors(const models::ParamStore& params, const config::GptConfig& gpt);
// Fills `params` from GPT2LMHeadModel's tensors (with or without the "transformer." prefix);
// every missing tensor or shape difference is an error naming it.
absl::Status load_hf_gpt2(const NamedTensors& hf, models::ParamStore& params,
                          const config::GptConfig& gpt, const std::string& where);

}  // namespace tessera::eval
