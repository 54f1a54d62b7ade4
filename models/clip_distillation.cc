#include "models/clip_distillation.h"

#include "models/distillation.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"

namespace tessera::models {

ContrastiveResult contrastive_distillation_term(config::ClipConfig::Loss kind,
                                                distributed::Communicator* dp, const Tensor& img,
                                                const Tensor& txt, float t, float bias,
                                                const Tensor& teacher_img,
                                                const Tensor& teacher_txt, float teacher_t,
                                                float teacher_bias, float temperature, float scale,
                                                const Tensor& dimg, const Tensor& dtxt) {
  TESSERA_CHECK(img.ndim() == 2 && img.shape() == txt.shape() && teacher_img.ndim() == 2 &&
                    teacher_img.shape() == teacher_txt.shape() && teacher_img.dim(0) == img.dim(0),
                "CLIP distillation: the student's embeddings ", img.describe(), " and ",
                txt.describe(), " and the teacher's ", teacher_img.describe(), " and ",
                teacher_txt.describe(), " must be (B, E) and (B, E_teacher) for the same B rows");
  const bool grads = scale != 0.0f;
  if (grads) {
    TESSERA_CHECK(dimg.defined() && dtxt.defined() && dimg.shape() == img.shape() &&
                      dtxt.shape() == txt.shape(),
                  "CLIP distillation: gradients must match the embeddings ", img.describe(),
                  ", got ", dimg.describe(), " and ", dtxt.describe());
  }
  const int R = dp != nullptr ? dp->size() : 1;
  const int64_t Bl = img.dim(0), E = img.dim(1), B = R * Bl;
  const int64_t offset = R > 1 ? dp->rank() * Bl : 0;
  const Device dev = img.device();
  // (B_global, width) copies of every rank's rows; the rows themselves on one rank.
  auto gather = [&](const Tensor& x) {
    if (R == 1) return x;
    Tensor all = Tensor::empty({B, x.dim(1)}, DType::f32, dev);
    dp->all_gather(x.view({x.numel()}), all.view({all.numel()}))->wait();
    return all;
  };
  const Tensor img_all = gather(img), txt_all = gather(txt);
  const Tensor timg_all = gather(teacher_img), ttxt_all = gather(teacher_txt);
  // Gradients w.r.t. the gathered student embeddings (this rank's terms only), summed to their
  // owners below.
  Tensor dimg_all, dtxt_all;
  if (grads) {
    dimg_all = Tensor::zeros({B, E}, DType::f32, dev);
    dtxt_all = Tensor::zeros({B, E}, DType::f32, dev);
  }
  const bool siglip = kind == config::ClipConfig::SIGLIP;
  const float share = siglip ? 1.0f : 0.5f;  // InfoNCE: the mean of two directions
  ContrastiveResult res;
  Tensor logits = Tensor::empty({Bl, B}, DType::f32, dev);   // (B_local, B_global) student
  Tensor tlogits = Tensor::empty({Bl, B}, DType::f32, dev);  // (B_local, B_global) teacher
  // One direction: the rows a (B_local, E) against the columns b_all (B_global, E).
  auto direction = [&](const Tensor& a, const Tensor& b_all, const Tensor& ta, const Tensor& tb_all,
                       const Tensor& da_all, const Tensor& db_all) {
    ops::matmul(a, b_all, logits, false, /*trans_b=*/true, /*alpha=*/t);
    ops::matmul(ta, tb_all, tlogits, false, /*trans_b=*/true, /*alpha=*/teacher_t);
    Tensor dlogits;
    if (grads) dlogits = Tensor::zeros({Bl, B}, DType::f32, dev);
    const double kd = siglip
                          ? sigmoid_distillation_term(logits, tlogits, bias, teacher_bias,
                                                      temperature, scale, dlogits)
                          : distillation_term(logits, tlogits, temperature, share * scale, dlogits);
    res.loss += share * kd;
    if (!grads) return;
    res.dt += contrastive_detail::dot(dlogits, logits) / double(t);  // logits = t * <a, b>
    if (siglip) res.dbias += ops::sum(dlogits);
    // d a += t * dlogits @ b_all (own rows), d b_all += t * dlogits^T @ a.
    ops::matmul(dlogits, b_all, da_all.slice(offset, offset + Bl), false, false, t, 1.0f);
    ops::matmul(dlogits, a, db_all, /*trans_a=*/true, false, t, 1.0f);
  };
  direction(img, txt_all, teacher_img, ttxt_all, dimg_all, dtxt_all);               // image -> text
  if (!siglip) direction(txt, img_all, teacher_txt, timg_all, dtxt_all, dimg_all);  // text -> image
  if (!grads) return res;
  if (R == 1) {
    ops::add_inplace(dimg, dimg_all);
    ops::add_inplace(dtxt, dtxt_all);
    return res;
  }
  Tensor own_img = Tensor::empty({Bl, E}, DType::f32, dev);
  Tensor own_txt = Tensor::empty({Bl, E}, DType::f32, dev);
  auto ri = dp->reduce_scatter(dimg_all.view({B * E}), own_img.view({Bl * E}),
                               distributed::ReduceOp::kSum);
  auto rt = dp->reduce_scatter(dtxt_all.view({B * E}), own_txt.view({Bl * E}),
                               distributed::ReduceOp::kSum);
  ri->wait();
  rt->wait();
  ops::add_inplace(dimg, own_img);
  ops::add_inplace(dtxt, own_txt);
  return res;
}

}  // namespace tessera::models
