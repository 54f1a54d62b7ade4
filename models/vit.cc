#include "models/vit.h"

#include "models/device_batch.h"
#include "models/distillation.h"
#include "ops/cross_entropy.h"

namespace tessera::models {
namespace {

const config::VitConfig& checked(const config::VitConfig& c) {
  TESSERA_CHECK(c.n_classes() > 0, "Vit: n_classes must be positive, got ", c.n_classes(),
                " (0 is only for a CLIP image tower)");
  return c;
}

}  // namespace

Vit::Vit(const config::VitConfig& c, bool recompute, distributed::Communicator* tp, Device device)
    : config_(checked(c)),
      store_(tp),
      tower_(store_, "", c, recompute),
      head_(store_, "head", c.transformer().d_model(), c.n_classes(), /*bias=*/true,
            Init::normal(0.02f)) {
  store_.finalize(device);
}

Tensor Vit::forward_logits(const Tensor& images) {
  Tensor pooled = tower_.forward(on_device(images, store_.device()),
                                 /*for_backward=*/!trunk_locked());  // (B, d)
  logits_ = head_.forward(pooled);                                   // (B, n_classes)
  return logits_;
}

Tensor Vit::features(const Tensor& images) {
  return tower_.forward(on_device(images, store_.device()), /*for_backward=*/false);
}

ops::SoftTargets Vit::soft_targets(const Batch& batch) const {
  ops::SoftTargets soft;
  soft.smoothing = smoothing_;
  const auto mix = batch.find("labels_mix"), weight = batch.find("label_weight");
  TESSERA_CHECK((mix == batch.end()) == (weight == batch.end()),
                "Vit: a mixed batch needs both \"labels_mix\" and \"label_weight\"");
  if (mix != batch.end()) {
    const Device device = store_.device();
    soft.mix_targets = on_device(mix->second, device);
    soft.weights = on_device(weight->second, device);
  }
  return soft;
}

double Vit::loss_of(const Batch& batch, Tensor& labels_out, Tensor& lse,
                    const ops::SoftTargets& soft) {
  const Tensor& images = batch.at("images");
  const Tensor labels = on_device(batch.at("labels"), store_.device());
  TESSERA_CHECK(labels.ndim() == 1 && labels.dtype() == DType::i32 && images.ndim() >= 1 &&
                    labels.dim(0) == images.dim(0),
                "Vit: \"labels\" must be (B) i32 with B = ", images.ndim() ? images.dim(0) : 0,
                " (the images' batch), got ", labels.describe());
  forward_logits(images);
  labels_out = labels;
  const int64_t B = labels.dim(0);
  Tensor loss = Tensor::empty({1}, DType::f32, labels.device());
  lse = Tensor::empty({B}, DType::f32, labels.device());
  ops::cross_entropy_forward(logits_, labels, loss, lse, -100, -1, soft);
  return host_scalar(loss);
}

LossResult Vit::forward_loss(const Batch& batch) {
  Tensor labels, lse;
  const double loss = loss_of(batch, labels, lse);
  return {loss, labels.dim(0)};
}

void Vit::set_teacher(std::unique_ptr<Vit> teacher, float alpha, float temperature) {
  TESSERA_CHECK(teacher && teacher->config_.n_classes() == config_.n_classes() &&
                    teacher->config_.image_size() == config_.image_size() &&
                    teacher->config_.channels() == config_.channels(),
                "Vit: a teacher must classify the same ", config_.n_classes(), " classes of ",
                config_.image_size(), "x", config_.image_size(), "x", config_.channels(),
                " images");
  teacher_.set(std::move(teacher), alpha, temperature, "Vit");
}

void Vit::set_dropout(const DropoutRates& rates) {
  tower_.set_dropout(rates, &dropout_);
}

LossResult Vit::forward_backward(const Batch& batch, float loss_scale) {
  const TrainingScope training(dropout_, batch);
  const ops::SoftTargets soft = soft_targets(batch);
  const bool hard = soft.smoothing == 0 && !soft.mix_targets.defined();
  Tensor labels, lse;
  double loss = loss_of(batch, labels, lse, soft);
  // With a teacher the hard loss weighs alpha (models/distillation.h).
  const float hard_scale = teacher_.hard_scale(loss_scale);
  Tensor dlogits = Tensor::empty(logits_.shape(), DType::f32, labels.device());
  if (hard) {
    ops::cross_entropy_backward(logits_, labels, lse, hard_scale, dlogits);
  } else {
    ops::cross_entropy_backward(logits_, labels, lse, hard_scale, dlogits, -100, -1, soft);
  }
  if (teacher_) {
    const Tensor student = logits_;  // the teacher's forward leaves this model's state alone
    const Tensor teacher = teacher_->forward_logits(batch.at("images"));
    const double kd = distillation_term(student, teacher, teacher_.temperature,
                                        teacher_.soft_scale(loss_scale), dlogits);
    loss = teacher_.combine(loss, kd);
  }
  if (trunk_locked()) {
    head_.backward(dlogits, /*need_dx=*/false);
  } else {
    tower_.backward(head_.backward(dlogits));
  }
  return {loss, labels.dim(0)};
}

double Vit::train_flops(int64_t batch_size) const {
  // 6 FLOPs per weight per token through it (forward 2, backward 4): the blocks see all
  // T = n_patches + 1 tokens, the patch embedding the n_patches, the head one per sample; plus
  // 12·L·T²·d per sample for attention scores and values (as Gpt).
  const double T = tower_.tokens(), L = config_.transformer().n_layers(), d = tower_.dim();
  // A locked trunk (train.freeze) runs forward only: 2 of its 6.
  const double trunk_share = trunk_locked() ? 1.0 / 3.0 : 1.0;
  const double per_sample =
      trunk_share * (6 * (T * tower_.block_params() + tower_.n_patches() * tower_.patch_params()) +
                     12 * L * T * T * d) +
      6 * d * config_.n_classes();
  return batch_size * per_sample;
}

int64_t Vit::activation_bytes(int64_t batch_size) const {
  return 4 * (tower_.saved_floats(batch_size, !trunk_locked()) + batch_size * config_.n_classes());
}

}  // namespace tessera::models
