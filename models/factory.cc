#include "models/factory.h"

#include "core/error.h"
#include "models/clip.h"
#include "models/dit.h"
#include "models/gpt.h"
#include "models/vit.h"

namespace tessera::models {

std::unique_ptr<Model> make_model(const config::ModelConfig& c, distributed::Communicator* tp,
                                  Device device) {
  const DropoutRates rates{c.dropout(), c.drop_path(), c.attention_dropout(),
                           c.embedding_dropout()};
  const bool drops = rates.any();
  switch (c.kind_case()) {
    case config::ModelConfig::kGpt: {
      auto m = std::make_unique<Gpt>(c.gpt(), c.recompute_activations(), tp, device);
      if (drops) m->set_dropout(rates);
      return m;
    }
    case config::ModelConfig::kDit:
      TESSERA_CHECK(!drops,
                    "model.dropout / drop_path / attention_dropout / embedding_dropout apply to "
                    "GPT, ViT and CLIP, not DiT");
      return std::make_unique<Dit>(c.dit(), c.recompute_activations(), tp, device);
    case config::ModelConfig::kVit: {
      auto m = std::make_unique<Vit>(c.vit(), c.recompute_activations(), tp, device);
      if (drops) m->set_dropout(rates);
      return m;
    }
    case config::ModelConfig::kClip: {
      auto m = std::make_unique<Clip>(c.clip(), c.recompute_activations(), tp, device);
      if (drops) m->set_dropout(rates);
      return m;
    }
    case config::ModelConfig::KIND_NOT_SET:
      break;
  }
  throw_error("make_model: the config names no model");
}

std::string model_kind(const config::Config& config) {
  switch (config.model().kind_case()) {
    case config::ModelConfig::kGpt:
      return "gpt";
    case config::ModelConfig::kVit:
      return "vit";
    case config::ModelConfig::kClip:
      return "clip";
    case config::ModelConfig::kDit:
      return "dit";
    case config::ModelConfig::KIND_NOT_SET:
      break;
  }
  return "";
}

}  // namespace tessera::models
