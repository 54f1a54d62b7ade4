// Clip's GradCache accumulation (models/clip.h): the loss of several micro-batches scored as one
// batch, their towers backpropagated one micro-batch at a time.
#include <cmath>

#include "models/clip.h"
#include "ops/contrastive.h"

namespace tessera::models {
namespace {

// The rows of every tensor (b_k, E), in order: (sum b_k, E) on their device.
Tensor concat_rows(const std::vector<Tensor>& parts) {
  int64_t rows = 0;
  for (const Tensor& p : parts) rows += p.dim(0);
  Tensor all = Tensor::empty({rows, parts[0].dim(1)}, DType::f32, parts[0].device());
  int64_t begin = 0;
  for (const Tensor& p : parts) {
    copy(p, all.slice(begin, begin + p.dim(0)));
    begin += p.dim(0);
  }
  return all;
}

}  // namespace

void Clip::cache_embeddings(const Batch& batch) {
  // Training forwards: the masks (keyed by the batch's position) are the ones the recomputation
  // in cached_backward draws again.
  const TrainingScope training(dropout_, batch);
  Tensor img, txt;
  project(batch, img, txt);
  cached_img_.push_back(img);
  cached_txt_.push_back(txt);
  if (teacher_) {  // distillation: the teacher's embeddings of the same rows, kept likewise
    Tensor timg, ttxt;
    teacher_embeddings(batch, timg, ttxt);
    cached_teacher_img_.push_back(timg);
    cached_teacher_txt_.push_back(ttxt);
  }
}

LossResult Clip::cached_loss(float dloss) {
  TESSERA_CHECK(!cached_img_.empty(), "Clip::cached_loss: no micro-batch was cached");
  const int64_t E = config_.embed_dim();
  int64_t B = 0;
  cached_begin_.clear();
  for (const Tensor& img : cached_img_) {
    cached_begin_.push_back(B);
    B += img.dim(0);
  }
  const Device device = cached_img_[0].device();
  Tensor img = Tensor::empty({B, E}, DType::f32, device);  // (B, E) every micro-batch's rows
  Tensor txt = Tensor::empty({B, E}, DType::f32, device);
  for (size_t mb = 0; mb < cached_img_.size(); ++mb) {
    const int64_t begin = cached_begin_[mb], end = begin + cached_img_[mb].dim(0);
    copy(cached_img_[mb], img.slice(begin, end));
    copy(cached_txt_[mb], txt.slice(begin, end));
  }
  cached_img_.clear();
  cached_txt_.clear();
  if (teacher_) {
    teacher_img_ = concat_rows(cached_teacher_img_);
    teacher_txt_ = concat_rows(cached_teacher_txt_);
    cached_teacher_img_.clear();
    cached_teacher_txt_.clear();
  }
  img_emb_ = Tensor::empty({B, E}, DType::f32, device);
  txt_emb_ = Tensor::empty({B, E}, DType::f32, device);
  img_norm_ = Tensor::empty({B}, DType::f32, device);
  txt_norm_ = Tensor::empty({B}, DType::f32, device);
  ops::l2_normalize_forward(img, img_emb_, img_norm_);
  ops::l2_normalize_forward(txt, txt_emb_, txt_norm_);

  const float s = logit_scale();
  const bool clamped = s > config_.max_logit_scale();  // as forward_backward
  const float t = std::exp(clamped ? config_.max_logit_scale() : s);
  cached_dimg_ = Tensor::empty({B, E}, DType::f32, device);
  cached_dtxt_ = Tensor::empty({B, E}, DType::f32, device);
  ContrastiveResult r = training_loss(t, dloss, cached_dimg_, cached_dtxt_);
  add_scalar_grads(r, t, clamped);
  // Through the normalisation here, on all rows at once (it is row-wise): the micro-batches'
  // backward then starts at the projections.
  ops::l2_normalize_backward(cached_dimg_, img_emb_, img_norm_, cached_dimg_);
  ops::l2_normalize_backward(cached_dtxt_, txt_emb_, txt_norm_, cached_dtxt_);
  return {r.loss, B};
}

void Clip::cached_backward(int64_t mb, const Batch& batch) {
  TESSERA_CHECK(cached_dimg_.defined() && mb >= 0 && mb < int64_t(cached_begin_.size()),
                "Clip::cached_backward: micro-batch ", mb, " of ", cached_begin_.size(),
                " cached (call cached_loss first)");
  const TrainingScope training(dropout_, batch);
  Tensor img, txt;
  project(batch, img, txt);  // recomputed: the towers keep this micro-batch's activations again
  const int64_t begin = cached_begin_[mb], end = begin + img.dim(0);
  const int64_t cached_end =
      mb + 1 < int64_t(cached_begin_.size()) ? cached_begin_[mb + 1] : cached_dimg_.dim(0);
  TESSERA_CHECK(end == cached_end, "Clip::cached_backward: micro-batch ", mb, " has ", img.dim(0),
                " rows, ", cached_end - begin, " were cached");
  report_scalar_grads();  // added once by cached_loss; final in every backward
  // Text tower (registered after the image tower), then the image tower, as forward_backward.
  text_.backward(text_proj_.backward(cached_dtxt_.slice(begin, end)));
  if (!image_tower_locked()) {
    image_.backward(image_proj_.backward(cached_dimg_.slice(begin, end)));
  } else {  // LiT: the projection trains, the tower kept nothing for backward
    image_proj_.backward(cached_dimg_.slice(begin, end), /*need_dx=*/false);
  }
}

}  // namespace tessera::models
