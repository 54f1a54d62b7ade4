#include "models/clip.h"

#include <cmath>

#include "models/clip_distillation.h"
#include "models/device_batch.h"
#include "models/distributed_contrastive_loss.h"
#include "ops/contrastive.h"
#include "ops/elementwise.h"

namespace tessera::models {
namespace {

const config::ClipConfig& checked(const config::ClipConfig& c) {
  TESSERA_CHECK(c.image().n_classes() == 0, "ClipConfig: image.n_classes must be 0 (no head), got ",
                c.image().n_classes());
  TESSERA_CHECK(c.embed_dim() > 0, "ClipConfig: embed_dim must be positive, got ", c.embed_dim());
  TESSERA_CHECK(c.max_logit_scale() > 0, "ClipConfig: max_logit_scale must be positive, got ",
                c.max_logit_scale());
  return c;
}

// grad (1) += v, on any device (one upload of the host scalar).
void add_scalar(const Tensor& grad, float v) {
  Tensor h = Tensor::empty({1}, DType::f32);
  h.data<float>()[0] = v;
  ops::add_inplace(grad, on_device(h, grad.device()));
}

}  // namespace

Clip::Clip(const config::ClipConfig& c, bool recompute, distributed::Communicator* tp,
           Device device)
    : config_(checked(c)),
      store_(tp),
      image_(store_, "image.", c.image(), recompute),
      image_proj_(store_, "image.proj", image_.dim(), c.embed_dim(), /*bias=*/false,
                  Init::normal(1.0f / std::sqrt(float(image_.dim())))),
      text_(store_, "text.", c.text(), recompute),
      text_proj_(store_, "text.proj", text_.dim(), c.embed_dim(), /*bias=*/false,
                 Init::normal(1.0f / std::sqrt(float(text_.dim())))) {
  logit_scale_ = store_.add(
      {"logit_scale", {1}, -1, Init::constant(c.init_logit_scale()), ParamGroup::kNormOrBias});
  if (c.loss() == config::ClipConfig::SIGLIP) {
    logit_bias_ = store_.add(
        {"logit_bias", {1}, -1, Init::constant(c.init_logit_bias()), ParamGroup::kNormOrBias});
  }
  store_.finalize(device);
}

float Clip::logit_scale() const {
  return host_scalar(store_.param(logit_scale_));
}
float Clip::logit_bias() const {
  return logit_bias_ < 0 ? 0.0f : host_scalar(store_.param(logit_bias_));
}

void Clip::project(const Batch& batch, Tensor& img, Tensor& txt) {
  const Device device = store_.device();
  const Tensor images = on_device(batch.at("images"), device);
  const Tensor text = on_device(batch.at("text"), device);
  TESSERA_CHECK(images.ndim() >= 1 && text.ndim() >= 1 && images.dim(0) == text.dim(0),
                "Clip: \"images\" ", images.describe(), " and \"text\" ", text.describe(),
                " must have the same batch size");
  img = image_proj_.forward(
      image_.forward(images, /*for_backward=*/!image_tower_locked()));  // (B, E)
  txt = text_proj_.forward(text_.forward(text, batch.at("text_eot")));  // (B, E)
}

void Clip::forward_embeddings(const Batch& batch) {
  Tensor img, txt;
  project(batch, img, txt);
  const int64_t B = img.dim(0);
  img_emb_ = Tensor::empty(img.shape(), DType::f32, img.device());
  txt_emb_ = Tensor::empty(txt.shape(), DType::f32, txt.device());
  img_norm_ = Tensor::empty({B}, DType::f32, img.device());
  txt_norm_ = Tensor::empty({B}, DType::f32, txt.device());
  ops::l2_normalize_forward(img, img_emb_, img_norm_);
  ops::l2_normalize_forward(txt, txt_emb_, txt_norm_);
}

Tensor Clip::encode_images(const Tensor& images) {
  Tensor img = image_proj_.forward(image_.forward(on_device(images, store_.device())));
  Tensor out = Tensor::empty(img.shape(), DType::f32, img.device());
  Tensor norm = Tensor::empty({img.dim(0)}, DType::f32, img.device());
  ops::l2_normalize_forward(img, out, norm);
  return out;
}

Tensor Clip::image_features(const Tensor& images) {
  return image_.forward(on_device(images, store_.device()), /*for_backward=*/false);
}

Tensor Clip::encode_text(const Tensor& text, const Tensor& text_eot) {
  // text_eot may stay where it is: the tower reads it on the host.
  Tensor txt = text_proj_.forward(
      text_.forward(on_device(text, store_.device()), text_eot));  // (B, E)
  Tensor out = Tensor::empty(txt.shape(), DType::f32, txt.device());
  Tensor norm = Tensor::empty({txt.dim(0)}, DType::f32, txt.device());
  ops::l2_normalize_forward(txt, out, norm);
  return out;
}

bool Clip::distributed_loss() const {
  return dp_ != nullptr && dp_->size() > 1;
}

ContrastiveResult Clip::loss(float t, float dloss, const Tensor& dimg, const Tensor& dtxt) {
  if (distributed_loss()) {
    return distributed_contrastive_loss(config_.loss(), *dp_, img_emb_, txt_emb_, t, logit_bias(),
                                        dloss, dimg, dtxt);
  }
  return contrastive_loss(config_.loss(), img_emb_, txt_emb_, 0, t, logit_bias(), dloss, dimg,
                          dtxt);
}

void Clip::set_teacher(std::unique_ptr<Clip> teacher, float alpha, float temperature) {
  if (teacher) {
    const config::ClipConfig& t = teacher->config_;
    TESSERA_CHECK(t.loss() == config_.loss(),
                  "Clip: a distillation teacher must use the student's ",
                  config::ClipConfig::Loss_Name(config_.loss()), " loss, got ",
                  config::ClipConfig::Loss_Name(t.loss()));
    TESSERA_CHECK(t.image().image_size() == config_.image().image_size() &&
                      t.image().channels() == config_.image().channels(),
                  "Clip: a distillation teacher must take the student's ",
                  config_.image().image_size(), "x", config_.image().image_size(), "x",
                  config_.image().channels(), " images, got ", t.image().image_size(), "x",
                  t.image().image_size(), "x", t.image().channels());
    TESSERA_CHECK(t.text().vocab_size() == config_.text().vocab_size() &&
                      t.text().context() >= config_.text().context(),
                  "Clip: a distillation teacher must read the student's text (vocab_size ",
                  config_.text().vocab_size(), ", context at least ", config_.text().context(),
                  "), got vocab_size ", t.text().vocab_size(), " and context ", t.text().context());
  }
  teacher_.set(std::move(teacher), alpha, temperature, "Clip");
}

void Clip::teacher_embeddings(const Batch& batch, Tensor& img, Tensor& txt) {
  img = teacher_->encode_images(batch.at("images"));
  txt = teacher_->encode_text(batch.at("text"), batch.at("text_eot"));
}

ContrastiveResult Clip::training_loss(float t, float dloss, const Tensor& dimg,
                                      const Tensor& dtxt) {
  if (!teacher_) return loss(t, dloss, dimg, dtxt);
  // alpha = 0 leaves no hard gradient: the loss is then only evaluated and the buffers zeroed
  // for the soft term to add to.
  const float hard = teacher_.hard_scale(dloss);
  ContrastiveResult r = loss(t, hard, dimg, dtxt);
  if (hard == 0.0f && dloss != 0.0f) {
    zero_(dimg);
    zero_(dtxt);
  }
  Clip& teacher = *teacher_.model;
  const float teacher_t =
      std::exp(std::min(teacher.logit_scale(), teacher.config_.max_logit_scale()));
  const ContrastiveResult kd = contrastive_distillation_term(
      config_.loss(), distributed_loss() ? dp_ : nullptr, img_emb_, txt_emb_, t, logit_bias(),
      teacher_img_, teacher_txt_, teacher_t, teacher.logit_bias(), teacher_.temperature,
      teacher_.soft_scale(dloss), dimg, dtxt);
  return {teacher_.combine(r.loss, kd.loss), r.dt + kd.dt, r.dbias + kd.dbias};
}

LossResult Clip::forward_loss(const Batch& batch) {
  forward_embeddings(batch);
  const float t = std::exp(std::min(logit_scale(), config_.max_logit_scale()));
  ContrastiveResult r = loss(t, 0.0f, Tensor(), Tensor());
  return {r.loss, img_emb_.dim(0)};
}

void Clip::set_dropout(const DropoutRates& rates) {
  image_.set_dropout(rates, &dropout_);
  text_.set_dropout(rates, &dropout_);
}

LossResult Clip::forward_backward(const Batch& batch, float loss_scale) {
  const TrainingScope training(dropout_, batch);
  forward_embeddings(batch);
  const float s = logit_scale();
  const bool clamped = s > config_.max_logit_scale();  // torch.clamp passes no gradient there
  const float t = std::exp(clamped ? config_.max_logit_scale() : s);
  Tensor dimg = Tensor::empty(img_emb_.shape(), DType::f32, img_emb_.device());
  Tensor dtxt = Tensor::empty(txt_emb_.shape(), DType::f32, txt_emb_.device());
  if (teacher_) teacher_embeddings(batch, teacher_img_, teacher_txt_);
  ContrastiveResult r = training_loss(t, loss_scale, dimg, dtxt);
  add_scalar_grads(r, t, clamped);
  report_scalar_grads();
  // Text tower (registered after the image tower), then the image tower.
  ops::l2_normalize_backward(dtxt, txt_emb_, txt_norm_, dtxt);
  text_.backward(text_proj_.backward(dtxt));
  if (!image_tower_locked()) {
    ops::l2_normalize_backward(dimg, img_emb_, img_norm_, dimg);
    image_.backward(image_proj_.backward(dimg));
  } else if (!store_.all_frozen("image.proj.")) {
    ops::l2_normalize_backward(dimg, img_emb_, img_norm_, dimg);
    image_proj_.backward(dimg, /*need_dx=*/false);
  }
  return {r.loss, img_emb_.dim(0)};
}

void Clip::add_scalar_grads(const ContrastiveResult& r, float t, bool clamped) {
  if (logit_bias_ >= 0) add_scalar(store_.grad(logit_bias_), float(r.dbias));
  add_scalar(store_.grad(logit_scale_), clamped ? 0.0f : float(r.dt * t));  // dt/ds = t
}

void Clip::report_scalar_grads() {
  // Scalars first: they were registered last, so their gradients come first in the flat buffer
  // (and reporting them final lets GradSync start on the buckets behind them during backward).
  if (logit_bias_ >= 0) store_.grad_done(logit_bias_);
  store_.grad_done(logit_scale_);
}

double Clip::train_flops(int64_t batch_size) const {
  // As Vit and Gpt: 6 FLOPs per weight per token through it, plus 12·L·T²·d attention per
  // sample in each tower (the text at its full context), plus the B x B similarity matmul.
  const auto& it = config_.image().transformer();
  const auto& tt = config_.text().transformer();
  const double E = config_.embed_dim(), Ti = image_.tokens(), Tt = config_.text().context();
  const double image = 6 * (Ti * image_.block_params() +
                            image_.n_patches() * image_.patch_params() + image_.dim() * E) +
                       12.0 * it.n_layers() * Ti * Ti * image_.dim();
  const double text = 6 * (Tt * text_.block_params() + text_.dim() * E) +
                      12.0 * tt.n_layers() * Tt * Tt * text_.dim();
  // A locked image tower (train.freeze) runs forward only: 2 of the 6.
  const double image_share = image_tower_locked() ? 1.0 / 3.0 : 1.0;
  return batch_size * (image_share * image + text + 6 * batch_size * E);
}

int64_t Clip::activation_bytes(int64_t batch_size) const {
  // Both towers, then the loss's transients: the (B, B) similarity matrices on one process; over
  // R data-parallel ranks, InfoNCE's (B, R*B) matrices plus the gathered embeddings and their
  // gradients (4 of (R*B, E)), or SigLIP's ring: one (B, B) block, its gradient and 4 (B, E)
  // buffers in flight.
  const int64_t B = batch_size, R = distributed_loss() ? dp_->size() : 1;
  const int64_t E = config_.embed_dim();
  int64_t loss = 4 * B * B;
  if (R > 1) {
    loss = config_.loss() == config::ClipConfig::INFONCE ? 4 * B * R * B + 4 * R * B * E
                                                         : 2 * B * B + 4 * B * E;
  }
  return 4 * (image_.saved_floats(batch_size, !image_tower_locked()) +
              text_.saved_floats(batch_size) + loss);
}

}  // namespace tessera::models
