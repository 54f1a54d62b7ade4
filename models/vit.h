#pragma once
// ViT image classifier: VisionTower (patch embedding, class token, learned positions, pre-LN
// bidirectional blocks, final LayerNorm, class-token pooling) and a Linear head (d -> n_classes)
// on the pooled class token; cross-entropy on the labels.
//
// Batch: "images" (B, S, S, C) f32, channels last, already normalised (S = config.image_size,
// C = config.channels); "labels" (B) i32 in [0, n_classes). On the host (copied to the model's
// device) or on the device. Per step the loss is read back once.
// Mixed batches (mixup / CutMix, train/mixing.h) add "labels_mix" (B) i32, each image's second
// label, and "label_weight" (B) f32, the share w of its first: forward_backward then scores soft
// targets w * onehot(labels) + (1 - w) * onehot(labels_mix). With set_label_smoothing(eps) the
// training loss smooths the targets (ops/cross_entropy.h's SoftTargets); forward_loss (evaluation)
// always scores the plain labels.
//
// Parameters: patch_embed.proj.{weight,bias}, cls_token.weight, pos_emb.weight, blocks.N.*,
// ln_f.*, head.{weight,bias}. The head is initialised normal(0.02) like every other Linear, not
// zero (timm's optional head_init_scale = 0): a zero head would also make every gradient below
// it zero in the first step.

#include <memory>

#include "models/distillation.h"
#include "models/model.h"
#include "models/vision_tower.h"
#include "ops/cross_entropy.h"

namespace tessera::models {

class Vit final : public Model {
 public:
  Vit(const config::VitConfig& config, bool recompute, distributed::Communicator* tp = nullptr,
      Device device = Device::cpu());

  ParamStore& params() override { return store_; }
  std::vector<std::string> host_inputs() const override { return {"position"}; }
  // model.dropout / model.drop_path (models/layers/dropout.h): training forwards only, rows keyed
  // by the batch's "position" (a (1) i64 host tensor) and train.seed (set_seed).
  void set_dropout(const DropoutRates& rates);
  void set_seed(uint64_t seed) override { dropout_.seed = seed; }

  LossResult forward_backward(const Batch& batch, float loss_scale) override;
  LossResult forward_loss(const Batch& batch) override;
  double train_flops(int64_t batch_size) const override;
  int64_t activation_bytes(int64_t batch_size) const override;

  // Logits (B, n_classes) of the last forward, for accuracy and tests.
  const Tensor& logits() const { return logits_; }
  Tensor forward_logits(const Tensor& images);  // images (B, S, S, C) -> logits (B, n_classes)
  // Knowledge distillation (models/distillation.h): forward_backward's loss becomes
  // alpha * (the hard loss above) + (1 - alpha) * T^2 * KL(teacher / T || student / T). The
  // teacher (a ViT with the same classes and image size, any width or depth) runs forward only,
  // in evaluation mode, on the same (possibly mixed) images; its parameters take no gradient.
  void set_teacher(std::unique_ptr<Vit> teacher, float alpha, float temperature);
  // optim.label_smoothing, for forward_backward only; in [0, 1).
  void set_label_smoothing(float eps) { smoothing_ = eps; }
  // The whole trunk frozen (train.freeze): it runs forward only, keeps no activations, and
  // backward stops at the head.
  bool trunk_locked() const { return store_.all_frozen("", "head."); }
  // The trunk's pooled features (B, d) without the head, keeping nothing for backward (linear
  // probes, eval/linear_probe.h). images (B, S, S, C) on the host or the model's device.
  Tensor features(const Tensor& images);

 private:
  // Runs forward and the loss; leaves the logits, and the labels (on the model's device) and the
  // rows' log-sum-exp for backward.
  // `soft`: the training loss's smoothing and mixing (default: the plain labels).
  double loss_of(const Batch& batch, Tensor& labels, Tensor& lse,
                 const ops::SoftTargets& soft = {});
  // The batch's soft targets for training: smoothing_ and its optional mix tensors.
  ops::SoftTargets soft_targets(const Batch& batch) const;

  config::VitConfig config_;
  ParamStore store_;
  VisionTower tower_;
  Linear head_;
  Tensor logits_;  // (B, n_classes)
  float smoothing_ = 0;
  DropoutState dropout_;
  TeacherSlot<Vit> teacher_;
};

}  // namespace tessera::models
