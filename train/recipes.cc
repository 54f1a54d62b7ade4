#include "train/recipes.h"

#include "models/gpt.h"
#include "models/vit.h"
#include "train/mixing.h"

namespace tessera::train {

void configure_model_recipes(models::Model& model, const config::Config& config) {
  const float eps = config.optim().label_smoothing();
  if (auto* vit = dynamic_cast<models::Vit*>(&model)) vit->set_label_smoothing(eps);
  if (auto* gpt = dynamic_cast<models::Gpt*>(&model)) gpt->set_label_smoothing(eps);
}

void apply_batch_recipes(const config::Config& config, int64_t first, models::Batch& batch) {
  if (mixing_enabled(config.data())) mix_batch(config.data(), config.train().seed(), first, batch);
  // Dropout masks are keyed by each row's stream position (models/layers/dropout.h).
  if (config.model().dropout() > 0 || config.model().drop_path() > 0) {
    Tensor position = Tensor::empty({1}, DType::i64);
    position.data<int64_t>()[0] = first;
    batch["position"] = position;
  }
}

}  // namespace tessera::train
