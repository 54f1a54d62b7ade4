#pragma once
// CLIP / SigLIP dual encoder. Image tower: VisionTower (ViT without head, pooled at the class
// token after the final LayerNorm) then image.proj (d_img -> embed, no bias). Text tower:
// TextTower (token + learned positions, causal blocks, final LayerNorm, pooled at the
// end-of-text token) then text.proj (d_txt -> embed, no bias). Both embeddings L2-normalised.
// Loss by config.loss (models/contrastive_loss.h): INFONCE, CLIP's symmetric softmax loss with
// t = exp(min(logit_scale, max_logit_scale)) (clamped in forward as torch.clamp: above the max
// its gradient is zero); SIGLIP, the pairwise sigmoid loss with t and a learnable logit_bias.
//
// Batch: "images" (B, S, S, C) f32, channels last, normalised; "text" (B, L) i32 tokens with
// L <= text.context; "text_eot" (B) i32, the position in [0, L) of each row's end-of-text token.
// On the host (copied to the model's device) or on the device; text_eot is read on the host (its
// range is checked there). Per step, besides the loss: logit_scale (and logit_bias) are read
// back, their gradients uploaded as host scalars, and the loss functions read back a few scalars
// (models/contrastive_loss.h).
//
// Parameters, in registration (forward) order: image.* (see vision_tower.h), image.proj.weight
// (embed, d_img), text.* (see text_tower.h), text.proj.weight (embed, d_txt), logit_scale (1),
// and for SIGLIP logit_bias (1). Projections init normal(d^-0.5) as CLIP; logit_scale and
// logit_bias start at config.init_logit_scale / init_logit_bias; neither decays.
//
// Gradient accumulation (GradCache, Gao et al. 2021; OpenCLIP's accumulated-feature training):
// with several micro-batches per step the loss must still contrast each image against every text
// of the step's batch, which micro-batches run through forward_backward one by one cannot do.
// cache_embeddings() runs the towers on each micro-batch and keeps only its embeddings (the
// towers' saved activations are replaced by the next forward), cached_loss() scores all cached
// rows together (over the data-parallel group as above) and keeps the gradient w.r.t. every
// embedding, and cached_backward() recomputes one micro-batch's forward and backpropagates its
// rows' slice. The gradients equal one forward_backward on the concatenated batch (the forward is
// deterministic, so the recomputed activations are the cached ones); memory is one micro-batch's
// activations plus (rows, embed_dim) embeddings and their gradients.
//
// Data parallel: after set_data_parallel(group) with more than one rank, every image is scored
// against the texts of the whole group's batch (models/distributed_contrastive_loss.h: gathered
// InfoNCE, ring SigLIP). The loss a rank returns is then its rows' mean (the group's average is
// the global-batch loss) and its gradients are the global loss's scaled by the group size, so
// that GradSync's average gives exactly the gradient one process computes on the whole batch.

#include <vector>

#include "models/contrastive_loss.h"
#include "models/distillation.h"
#include "models/layers/dropout.h"
#include "models/layers/linear.h"
#include "models/model.h"
#include "models/text_tower.h"
#include "models/vision_tower.h"

namespace tessera::distributed {
class Communicator;
}

namespace tessera::models {

class Clip final : public Model {
 public:
  Clip(const config::ClipConfig& config, bool recompute, distributed::Communicator* tp = nullptr,
       Device device = Device::cpu());

  ParamStore& params() override { return store_; }
  // text_eot is range-checked on the host (a bad index would pool another sample's row).
  std::vector<std::string> host_inputs() const override { return {"text_eot", "position"}; }
  // model.dropout / model.drop_path (models/layers/dropout.h): training forwards only, rows keyed
  // by the batch's "position" (a (1) i64 host tensor) and train.seed (set_seed).
  void set_dropout(const DropoutRates& rates);
  void set_seed(uint64_t seed) override { dropout_.seed = seed; }

  LossResult forward_backward(const Batch& batch, float loss_scale) override;
  LossResult forward_loss(const Batch& batch) override;
  double train_flops(int64_t batch_size) const override;
  int64_t activation_bytes(int64_t batch_size) const override;

  // L2-normalised embeddings (B, embed) of the last forward, for retrieval evaluation.
  const Tensor& image_embeddings() const { return img_emb_; }
  const Tensor& text_embeddings() const { return txt_emb_; }
  // Runs both towers; fills image_embeddings() and text_embeddings().
  void forward_embeddings(const Batch& batch);
  // LiT's locked image tower: every image.* parameter but image.proj frozen (train.freeze). It
  // runs forward only and keeps no activations; backward stops at image.proj (or, when that
  // is frozen too, at the image embeddings).
  bool image_tower_locked() const { return store_.all_frozen("image.", "image.proj."); }
  // One tower each, for evaluation (zero-shot prompts have no images): L2-normalised
  // embeddings, new tensors on the model's device. images (B, S, S, C) -> (B, E);
  // text (B, L) i32 with text_eot (B) i32 -> (B, E). Keep nothing for backward.
  Tensor encode_images(const Tensor& images);
  // The image tower's pooled features (B, d) before the projection, keeping nothing for backward
  // (linear probes, eval/linear_probe.h).
  Tensor image_features(const Tensor& images);
  Tensor encode_text(const Tensor& text, const Tensor& text_eot);

  // GradCache (see the header comment). Call order per step: cache_embeddings for micro-batches
  // 0..M-1, then cached_loss once, then cached_backward(mb, the same batch) for each mb (any
  // order, each exactly once). cached_loss adds the logit_scale / logit_bias gradients; every
  // cached_backward reports them final (grad_done) with the towers', so that a gradient hook
  // sees the complete buffer in the last backward. Over a data-parallel group every rank caches
  // the same number of rows (the distributed loss's equal slices).
  void cache_embeddings(const Batch& batch);
  // The loss of the cached rows with d(loss) = dloss (1: the step's whole loss); count = rows.
  LossResult cached_loss(float dloss);
  void cached_backward(int64_t mb, const Batch& batch);

  // Knowledge distillation (models/clip_distillation.h): the training loss (forward_backward,
  // cached_loss) becomes alpha * (the contrastive loss) + (1 - alpha) * KD between the teacher's
  // and this model's image-text logits over the same (global) batch, each model with its own
  // logit scale (and bias), both divided by T. The teacher is a Clip of the same loss kind with
  // this model's image size and channels, text vocabulary and at least its text context, any
  // width, depth or embed_dim; it runs forward only without dropout (encode_images /
  // encode_text, keeping nothing), unsplit on every rank. With GradCache its embeddings are
  // computed per micro-batch in cache_embeddings and scored in cached_loss. forward_loss (eval)
  // stays the plain contrastive loss.
  void set_teacher(std::unique_ptr<Clip> teacher, float alpha, float temperature);

  // The data-parallel group the loss spans (borrowed; nullptr or one rank: this batch only).
  // Every rank of the group then calls forward_backward / forward_loss in step: the loss is
  // collective over the group.
  void set_data_parallel(distributed::Communicator* dp) { dp_ = dp; }

 private:
  float logit_scale() const;  // the parameter's value (unclamped)
  float logit_bias() const;   // 0 for INFONCE
  // The configured loss on img_emb_ / txt_emb_, over the data-parallel group when there is one.
  ContrastiveResult loss(float t, float dloss, const Tensor& dimg, const Tensor& dtxt);
  // The training loss on img_emb_ / txt_emb_ with d(loss) = dloss: the contrastive loss, and with
  // a teacher, combined with the distillation term against teacher_img_ / teacher_txt_.
  ContrastiveResult training_loss(float t, float dloss, const Tensor& dimg, const Tensor& dtxt);
  // The teacher's normalised embeddings of `batch` (forward only).
  void teacher_embeddings(const Batch& batch, Tensor& img, Tensor& txt);
  bool distributed_loss() const;
  // Adds d(logit_scale) = dt * t (0 when the scale is clamped) and d(logit_bias) to the grads.
  void add_scalar_grads(const ContrastiveResult& r, float t, bool clamped);
  void report_scalar_grads();  // grad_done for logit_bias and logit_scale
  // Both towers and projections on one batch: (B, E) image and text embeddings, not normalised.
  void project(const Batch& batch, Tensor& img, Tensor& txt);

  config::ClipConfig config_;
  ParamStore store_;
  VisionTower image_;
  Linear image_proj_;
  TextTower text_;
  Linear text_proj_;
  ParamId logit_scale_ = -1, logit_bias_ = -1;
  distributed::Communicator* dp_ = nullptr;
  Tensor img_emb_, txt_emb_;    // (B, E) normalised
  Tensor img_norm_, txt_norm_;  // (B) norms before normalising, for backward
  // GradCache: each micro-batch's projected embeddings (b, E) before normalising, then the
  // gradient w.r.t. all of them (rows, E) and where each micro-batch's rows start.
  std::vector<Tensor> cached_img_, cached_txt_;
  Tensor cached_dimg_, cached_dtxt_;
  std::vector<int64_t> cached_begin_;
  DropoutState dropout_;
  TeacherSlot<Clip> teacher_;
  Tensor teacher_img_, teacher_txt_;  // (B, E_teacher) normalised, the training batch's
  std::vector<Tensor> cached_teacher_img_, cached_teacher_txt_;  // GradCache: per micro-batch
};

}  // namespace tessera::models
