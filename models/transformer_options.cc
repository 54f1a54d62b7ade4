#include "models/transformer_options.h"

#include "core/error.h"

namespace tessera::models {

ops::Activation block_activation(const config::TransformerConfig& t) {
  switch (t.activation()) {
    case config::TransformerConfig::GELU_TANH:
      return ops::Activation::kGeluTanh;
    case config::TransformerConfig::GELU_ERF:
      return ops::Activation::kGeluErf;
    case config::TransformerConfig::QUICK_GELU:
      return ops::Activation::kQuickGelu;
    default:
      break;
  }
  throw_error(absl::StrCat("transformer.activation: unknown value ", int(t.activation())));
}

float block_layer_norm_eps(const config::TransformerConfig& t, float model_default) {
  return t.has_layer_norm_eps() ? t.layer_norm_eps() : model_default;
}

}  // namespace tessera::models
