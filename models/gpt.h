#pragma once
// GPT: decoder-only language model (GPT-2 layout). Token + learned position embeddings, pre-LN
// causal transformer blocks, final LayerNorm, output head tied to the token embedding (or its own
// weight), next-token cross-entropy.
//
// Batch: "tokens" (B, T) i32 with T <= context; "targets" (B, T) i32, -100 = ignored.

#include <memory>
#include <vector>

#include "models/layers/embedding.h"
#include "models/layers/layernorm.h"
#include "models/layers/transformer_block.h"
#include "models/model.h"
#include "proto/config.pb.h"

namespace tessera::models {

class Gpt final : public Model {
 public:
  Gpt(const config::GptConfig& config, bool recompute, int tp_rank = 0, int tp_size = 1);

  ParamStore& params() override { return store_; }
  LossResult forward_backward(const Batch& batch, float loss_scale) override;
  LossResult forward_loss(const Batch& batch) override;
  double train_flops(int64_t batch_size) const override;
  int64_t activation_bytes(int64_t batch_size) const override;

  // Logits (B, T, V) of the last forward, for generation and tests.
  const Tensor& logits() const { return logits_; }
  Tensor forward_logits(const Tensor& tokens);  // tokens (B, T) -> logits (B, T, V)

 private:
  Tensor head_weight() const;  // (V, C) in the compute dtype
  Tensor head_grad() const;

  config::GptConfig config_;
  ParamStore store_;
  Embedding tok_, pos_;
  std::vector<std::unique_ptr<TransformerBlock>> blocks_;
  std::unique_ptr<LayerNorm> ln_f_;
  ParamId head_ = -1;  // untied output head (V, C)
  Tensor positions_;   // (B*T) i32, rebuilt when B or T change
  Tensor hidden_;      // saved final hidden state (B, T, C), in the compute dtype
  Tensor logits_;      // (B, T, V)
};

}  // namespace tessera::models
