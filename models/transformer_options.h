#pragma once
// What a TransformerConfig says about its blocks beyond their shapes: the MLP's activation and
// the LayerNorms' eps. Shared by every model built from transformer blocks (GPT, ViT and CLIP
// towers, DiT), so that an unset field means the same everywhere: tessera's original choice.

#include "ops/activation.h"
#include "proto/config.pb.h"

namespace tessera::models {

// GELU_TANH (the default), GELU_ERF or QUICK_GELU as the op's enum.
ops::Activation block_activation(const config::TransformerConfig& t);

// t.layer_norm_eps when set, else `model_default` (1e-5 for GPT/ViT/CLIP, 1e-6 for DiT).
float block_layer_norm_eps(const config::TransformerConfig& t, float model_default = 1e-5f);

}  // namespace tessera::models
