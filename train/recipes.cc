#include "train/recipes.h"

#include <type_traits>

#include "absl/strings/str_cat.h"

#include "checkpoint/checkpoint.h"
#include "models/clip.h"
#include "models/gpt.h"
#include "models/vit.h"
#include "train/mixing.h"

namespace tessera::train {

namespace {

// The frozen teacher of distill.teacher: a model of the student's family from its checkpoint (the
// EMA weights when it has them) on the student's device; a ViT unsplit, a GPT split over `tp`
// (the student's TP group: its logits are split like the student's). Errors name the checkpoint.
template <typename M>
std::unique_ptr<M> load_teacher(const config::Config& config, Device device,
                                distributed::Communicator* tp = nullptr) {
  const std::string& path = config.distill().teacher();
  auto info = checkpoint::open_checkpoint(path);
  TESSERA_CHECK(info.ok(), "distill.teacher: ", info.status().message());
  const config::ModelConfig& m = info->config.model();
  std::unique_ptr<M> teacher;
  if constexpr (std::is_same_v<M, models::Vit>) {
    TESSERA_CHECK(m.has_vit(), "distill.teacher ", info->dir, " is not a ViT checkpoint");
    teacher = std::make_unique<M>(m.vit(), false, nullptr, device);
  } else if constexpr (std::is_same_v<M, models::Clip>) {
    TESSERA_CHECK(m.has_clip(), "distill.teacher ", info->dir, " is not a CLIP checkpoint");
    teacher = std::make_unique<M>(m.clip(), false, nullptr, device);
  } else {
    TESSERA_CHECK(m.has_gpt(), "distill.teacher ", info->dir, " is not a GPT checkpoint");
    TESSERA_CHECK(m.gpt().vocab_size() == config.model().gpt().vocab_size(), "distill.teacher ",
                  info->dir, ": its model.gpt.vocab_size ", m.gpt().vocab_size(),
                  " differs from the student's ", config.model().gpt().vocab_size());
    teacher = std::make_unique<M>(m.gpt(), false, tp, device);
  }
  const std::string role = checkpoint::has_role(*info, "ema") ? "ema" : "param";
  absl::Status s = checkpoint::load_model_parameters(*info, teacher->params(), role);
  TESSERA_CHECK(s.ok(), "distill.teacher: ", s.message());
  return teacher;
}

// Hands the teacher to the student; a refusal (another family's shapes, classes, vocabulary)
// names the checkpoint it came from.
template <typename M>
void set_teacher(M& student, std::unique_ptr<M> teacher, const config::Config& config) {
  try {
    student.set_teacher(std::move(teacher), config.distill().alpha(),
                        config.distill().temperature());
  } catch (const Error& e) {
    throw_error(absl::StrCat("distill.teacher ", config.distill().teacher(), ": ", e.what()));
  }
}

}  // namespace

void configure_model_recipes(models::Model& model, const config::Config& config) {
  const float eps = config.optim().label_smoothing();
  if (auto* vit = dynamic_cast<models::Vit*>(&model)) {
    vit->set_label_smoothing(eps);
    if (!config.distill().teacher().empty()) {
      set_teacher(*vit, load_teacher<models::Vit>(config, model.device()), config);
    }
  }
  if (auto* gpt = dynamic_cast<models::Gpt*>(&model)) {
    gpt->set_label_smoothing(eps);
    if (!config.distill().teacher().empty()) {
      set_teacher(*gpt, load_teacher<models::Gpt>(config, model.device(), gpt->params().tp_comm()),
                  config);
    }
  }
  if (auto* clip = dynamic_cast<models::Clip*>(&model)) {
    if (!config.distill().teacher().empty()) {
      set_teacher(*clip, load_teacher<models::Clip>(config, model.device()), config);
    }
  }
}

void apply_batch_recipes(const config::Config& config, int64_t first, models::Batch& batch) {
  if (mixing_enabled(config.data())) mix_batch(config.data(), config.train().seed(), first, batch);
  // Dropout masks are keyed by each row's stream position (models/layers/dropout.h).
  const config::ModelConfig& m = config.model();
  if (m.dropout() > 0 || m.drop_path() > 0 || m.attention_dropout() > 0 ||
      m.embedding_dropout() > 0) {
    Tensor position = Tensor::empty({1}, DType::i64);
    position.data<int64_t>()[0] = first;
    batch["position"] = position;
  }
}

}  // namespace tessera::train
