#include "models/contrastive_loss.h"

#include "ops/contrastive.h"
#include "ops/cross_entropy.h"
#include "ops/matmul.h"
#include "ops/reduce.h"

namespace tessera::models {

namespace contrastive_detail {

float host_scalar(const Tensor& t) {
  Tensor h = t.device().is_cpu() ? t : to_device(t, Device::cpu());
  return h.data<float>()[0];
}

// <a, b> over all elements, as a (1, n) @ (n, 1) matmul (device-neutral).
double dot(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty({1, 1}, DType::f32, a.device());
  ops::matmul(a.view({1, a.numel()}), b.view({b.numel(), 1}), out);
  return host_scalar(out);
}

}  // namespace contrastive_detail
namespace {

using contrastive_detail::dot;
using contrastive_detail::host_scalar;

// logits (Ba, Bb) = t * a @ b^T
Tensor scaled_similarities(const Tensor& a, const Tensor& b, float t) {
  Tensor logits = Tensor::empty({a.dim(0), b.dim(0)}, DType::f32, a.device());
  ops::matmul(a, b, logits, false, /*trans_b=*/true, /*alpha=*/t);
  return logits;
}

// Backward of logits = t * a @ b^T given dlogits: da (=/+=) t * dlogits @ b,
// db (=/+=) t * dlogits^T @ a; returns dt = <dlogits, logits> / t.
double similarity_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& a,
                           const Tensor& b, float t, const Tensor& da, const Tensor& db,
                           bool accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  ops::matmul(dlogits, b, da, false, false, t, beta);
  ops::matmul(dlogits, a, db, /*trans_a=*/true, false, t, beta);
  return dot(dlogits, logits) / double(t);
}

void check_embeddings(const Tensor& img, const Tensor& txt, int64_t offset) {
  TESSERA_CHECK(img.ndim() == 2 && txt.ndim() == 2 && img.dim(1) == txt.dim(1),
                "contrastive_loss: embeddings must be (Bi, E) and (Bt, E), got ", img.describe(),
                " and ", txt.describe());
  TESSERA_CHECK(offset >= 0 && offset + img.dim(0) <= txt.dim(0), "contrastive_loss: the ",
                img.dim(0), " positive pairs from offset ", offset, " exceed the ", txt.dim(0),
                " texts");
}

}  // namespace

ContrastiveResult infonce_direction(const Tensor& a, const Tensor& b, int64_t offset, float t,
                                    float dloss, const Tensor& da, const Tensor& db,
                                    bool accumulate) {
  check_embeddings(a, b, offset);
  const int64_t Ba = a.dim(0);
  Tensor logits = scaled_similarities(a, b, t);  // (Ba, Bb)
  Tensor targets = Tensor::empty({Ba}, DType::i32);
  for (int64_t i = 0; i < Ba; ++i) targets.data<int32_t>()[i] = int32_t(offset + i);
  if (!a.device().is_cpu()) targets = to_device(targets, a.device());
  Tensor loss = Tensor::empty({1}, DType::f32, a.device());
  Tensor lse = Tensor::empty({Ba}, DType::f32, a.device());
  ops::cross_entropy_forward(logits, targets, loss, lse);
  ContrastiveResult r;
  r.loss = host_scalar(loss);
  if (dloss != 0.0f) {
    Tensor dlogits = Tensor::empty(logits.shape(), DType::f32, a.device());
    ops::cross_entropy_backward(logits, targets, lse, dloss, dlogits);
    r.dt = similarity_backward(dlogits, logits, a, b, t, da, db, accumulate);
  }
  return r;
}

ContrastiveResult contrastive_loss(config::ClipConfig::Loss kind, const Tensor& img,
                                   const Tensor& txt, int64_t offset, float t, float bias,
                                   float dloss, const Tensor& dimg, const Tensor& dtxt) {
  check_embeddings(img, txt, offset);
  if (kind == config::ClipConfig::INFONCE) {
    // Text->image from the same rows needs every image: only on one process (Bi == Bt) here.
    TESSERA_CHECK(img.dim(0) == txt.dim(0) && offset == 0,
                  "contrastive_loss: INFONCE on one process needs as many images as texts, got ",
                  img.describe(), " and ", txt.describe());
    const float half = 0.5f * dloss;
    ContrastiveResult i2t = infonce_direction(img, txt, 0, t, half, dimg, dtxt, false);
    ContrastiveResult t2i = infonce_direction(txt, img, 0, t, half, dtxt, dimg, true);
    return {0.5 * (i2t.loss + t2i.loss), i2t.dt + t2i.dt, 0.0};
  }
  Tensor logits = scaled_similarities(img, txt, t);  // (Bi, Bt)
  Tensor loss = Tensor::empty({1}, DType::f32, img.device());
  ops::sigmoid_pair_loss_forward(logits, bias, offset, loss);
  ContrastiveResult r;
  r.loss = host_scalar(loss);
  if (dloss != 0.0f) {
    Tensor dlogits = Tensor::empty(logits.shape(), DType::f32, img.device());
    ops::sigmoid_pair_loss_backward(logits, bias, offset, dloss, dlogits);
    r.dbias = ops::sum(dlogits);
    r.dt = similarity_backward(dlogits, logits, img, txt, t, dimg, dtxt, false);
  }
  return r;
}

}  // namespace tessera::models
