#pragma once
// The Hugging Face config fields of a transformer stack that tessera matches through its
// TransformerConfig (proto/config.proto): the MLP activation and the LayerNorm eps. Shared by
// the GPT-2, ViT and CLIP mappings (and the timm / open_clip ones, whose names differ but whose
// choices are the same), so that every format reads and writes them alike.
//
//   HF activation                                tessera activation
//   "gelu_new", "gelu_pytorch_tanh", "gelu_fast" GELU_TANH (the default)
//   "gelu", "gelu_python"                        GELU_ERF
//   "quick_gelu"                                 QUICK_GELU
// layer_norm_eps: any finite eps > 0; a tessera config keeps the field unset when it equals the
// model's default (1e-5), so an import of a default model is the config it always was.

#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "proto/config.pb.h"

namespace tessera::eval {

// Sets t's activation from HF activation name `act`; an unknown name is appended to `problems`
// naming `field` (e.g. "vision_config.hidden_act").
void activation_from_hf(const std::string& act, const std::string& field,
                        config::TransformerConfig* t, std::vector<std::string>& problems);

// Sets t's layer_norm_eps from HF's value `eps` (field `field`), unset when it is tessera's
// 1e-5; a non-number or eps <= 0 is appended to `problems`.
void layer_norm_eps_from_hf(const nlohmann::json& eps, const std::string& field,
                            config::TransformerConfig* t, std::vector<std::string>& problems);

// HF's name of t's activation; `tanh_name` is the model family's name of the tanh form
// ("gelu_new" for GPT-2, "gelu_pytorch_tanh" for ViT and CLIP).
std::string hf_activation(const config::TransformerConfig& t, const char* tanh_name);

// t's LayerNorm eps for an HF config: the shortest decimal that reads back as the same f32
// (1e-12, not 9.99999996e-13).
double hf_layer_norm_eps(const config::TransformerConfig& t);

}  // namespace tessera::eval
