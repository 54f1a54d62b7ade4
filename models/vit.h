#pragma once
// ViT image classifier: VisionTower (patch embedding, class token, learned positions, pre-LN
// bidirectional blocks, final LayerNorm, class-token pooling) and a Linear head (d -> n_classes)
// on the pooled class token; cross-entropy on the labels.
//
// Batch: "images" (B, S, S, C) f32, channels last, already normalised (S = config.image_size,
// C = config.channels); "labels" (B) i32 in [0, n_classes). On the host (copied to the model's
// device) or on the device. Per step the loss is read back once.
//
// Parameters: patch_embed.proj.{weight,bias}, cls_token.weight, pos_emb.weight, blocks.N.*,
// ln_f.*, head.{weight,bias}. The head is initialised normal(0.02) like every other Linear, not
// zero (timm's optional head_init_scale = 0): a zero head would also make every gradient below
// it zero in the first step.

#include "models/model.h"
#include "models/vision_tower.h"

namespace tessera::models {

class Vit final : public Model {
 public:
  Vit(const config::VitConfig& config, bool recompute, distributed::Communicator* tp = nullptr,
      Device device = Device::cpu());

  ParamStore& params() override { return store_; }
  LossResult forward_backward(const Batch& batch, float loss_scale) override;
  LossResult forward_loss(const Batch& batch) override;
  double train_flops(int64_t batch_size) const override;
  int64_t activation_bytes(int64_t batch_size) const override;

  // Logits (B, n_classes) of the last forward, for accuracy and tests.
  const Tensor& logits() const { return logits_; }
  Tensor forward_logits(const Tensor& images);  // images (B, S, S, C) -> logits (B, n_classes)
  // The whole trunk frozen (train.freeze): it runs forward only, keeps no activations, and
  // backward stops at the head.
  bool trunk_locked() const { return store_.all_frozen("", "head."); }
  // The trunk's pooled features (B, d) without the head, keeping nothing for backward (linear
  // probes, eval/linear_probe.h). images (B, S, S, C) on the host or the model's device.
  Tensor features(const Tensor& images);

 private:
  // Runs forward and the loss; leaves the logits, and the labels (on the model's device) and the
  // rows' log-sum-exp for backward.
  double loss_of(const Batch& batch, Tensor& labels, Tensor& lse);

  config::VitConfig config_;
  ParamStore store_;
  VisionTower tower_;
  Linear head_;
  Tensor logits_;  // (B, n_classes)
};

}  // namespace tessera::models
