#include "train/recipes.h"

#include "checkpoint/checkpoint.h"
#include "models/gpt.h"
#include "models/vit.h"
#include "train/mixing.h"

namespace tessera::train {

namespace {

// The frozen teacher of distill.teacher: a ViT from its checkpoint (the EMA weights when it has
// them), unsplit, on the student's device. Errors name the checkpoint.
std::unique_ptr<models::Vit> load_teacher(const config::Config& config, Device device) {
  const std::string& path = config.distill().teacher();
  auto info = checkpoint::open_checkpoint(path);
  TESSERA_CHECK(info.ok(), "distill.teacher: ", info.status().message());
  const config::ModelConfig& m = info->config.model();
  TESSERA_CHECK(m.has_vit(), "distill.teacher ", info->dir, " is not a ViT checkpoint");
  auto teacher = std::make_unique<models::Vit>(m.vit(), false, nullptr, device);
  const std::string role = checkpoint::has_role(*info, "ema") ? "ema" : "param";
  absl::Status s = checkpoint::load_model_parameters(*info, teacher->params(), role);
  TESSERA_CHECK(s.ok(), "distill.teacher: ", s.message());
  return teacher;
}

}  // namespace

void configure_model_recipes(models::Model& model, const config::Config& config) {
  const float eps = config.optim().label_smoothing();
  if (auto* vit = dynamic_cast<models::Vit*>(&model)) {
    vit->set_label_smoothing(eps);
    if (!config.distill().teacher().empty()) {
      vit->set_teacher(load_teacher(config, model.device()), config.distill().alpha(),
                       config.distill().temperature());
    }
  }
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
