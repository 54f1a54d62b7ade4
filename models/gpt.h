#pragma once
// GPT: decoder-only language model (GPT-2 layout). Token + learned position embeddings, pre-LN
// causal transformer blocks, final LayerNorm, output head tied to the token embedding (or its own
// weight), next-token cross-entropy.
//
// Batch: "tokens" (B, T) i32 with T <= context; "targets" (B, T) i32, -100 = ignored; on the
// host (copied to the model's device) or on the device. Per step the loss is read back once.
//
// Tensor parallelism (tp = the TP group, nullptr = none): the blocks split heads and MLP hidden
// (Megatron, through Linear); the token embedding is vocab parallel and the output head (tied,
// or its own weight) holds the same vocabulary rows, so each rank computes logits (B, T, V/T)
// for its vocabulary slice and the loss is a vocab-parallel cross-entropy: the logits are never
// gathered (ops/vocab_parallel.h). Every TP rank returns the same loss. Position embeddings and
// LayerNorms are replicated. Vp (below), n_heads and the MLP width must be divisible by T.
//
// Padded vocabulary (GptConfig.vocab_pad_multiple = m > 1): the token embedding and an untied
// head have Vp = round_up(V, m) rows (GPT-2: 50257 -> 50304 with m = 128), as Megatron and
// llm.c do, for aligned GPU matmuls and a vocabulary that splits over T. Vp does NOT include T
// (Megatron rounds to m * T): a checkpoint's shapes are then the same under every TP size, so it
// loads into any layout (docs/DESIGN.md decision 4); with m = 128 and T <= 8 each shard still has a
// multiple of 16 rows. Rows [V, Vp) start at zero and stay zero: no valid token looks them up and
// the loss ignores their logits (the CE ops take V as their valid columns), so their gradients
// are exactly 0 and AdamW leaves them (weight decay of 0 is 0). Checkpoints hold the padded
// global shapes: tok_emb.weight and head.weight are (Vp, C); a checkpoint written with another
// padding fails to load with the shape-mismatch error naming the tensor. Logits have Vp columns
// (under TP: this rank's Vp/T); the columns >= V are not a distribution's support and readers
// (eval, generation) must look only at the first V.

#include <memory>
#include <vector>

#include "models/distillation.h"
#include "models/layers/embedding.h"
#include "models/layers/layernorm.h"
#include "models/layers/transformer_block.h"
#include "models/model.h"
#include "proto/config.pb.h"

namespace tessera::models {

class Gpt final : public Model {
 public:
  Gpt(const config::GptConfig& config, bool recompute, distributed::Communicator* tp = nullptr,
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

  // The padded vocabulary Vp of `config` (vocab_size when vocab_pad_multiple is 0 or 1).
  static int64_t padded_vocab(const config::GptConfig& config);
  int64_t vocab_size() const { return config_.vocab_size(); }  // V: the real ids
  int64_t padded_vocab_size() const { return tok_.num(); }     // Vp: the rows of the tables

  // Logits (B, T, V_local) of the last forward, for generation and tests: this rank's slice
  // [vocab_begin(), vocab_begin() + V_local) of the PADDED vocabulary (all Vp without TP);
  // global columns >= vocab_size() are padding.
  const Tensor& logits() const { return logits_; }
  Tensor forward_logits(const Tensor& tokens);  // tokens (B, T) -> logits (B, T, V_local)
  int64_t vocab_begin() const { return tok_.local_begin(); }
  // optim.label_smoothing for forward_backward's loss (eps / vocab_size on every real id, under
  // TP too: the logits stay split, ops/vocab_parallel.h); forward_loss stays plain. In [0, 1).
  void set_label_smoothing(float eps) { smoothing_ = eps; }
  // Knowledge distillation (models/distillation.h, vocab_distillation_term): forward_backward's
  // loss becomes alpha * CE + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))
  // per token, averaged over the non-ignored targets as the CE is. The teacher (same vocabulary,
  // any width or depth) runs forward only on the same tokens; under TP it is split over the same
  // group (built with this model's TP communicator) and must have the same padded vocabulary, so
  // both logits stay split alike. forward_loss stays the plain CE. The teacher's parameters are
  // not this model's: nothing trains, saves or counts them.
  void set_teacher(std::unique_ptr<Gpt> teacher, float alpha, float temperature);

 private:
  Tensor head_weight() const;  // (V_local, C) in the compute dtype (padded rows included)
  Tensor head_grad() const;
  // Mean cross-entropy of logits (N, V_local) (vocab parallel under TP; identical on every TP
  // rank) into loss (1), and each row's global log-sum-exp into lse (N) for backward.
  void loss_forward(const Tensor& logits, const Tensor& targets, const Tensor& loss,
                    const Tensor& lse, float smoothing = 0);

  config::GptConfig config_;
  ParamStore store_;
  Embedding tok_, pos_;
  std::vector<std::unique_ptr<TransformerBlock>> blocks_;
  std::unique_ptr<LayerNorm> ln_f_;
  ParamId head_ = -1;  // untied output head (Vp, C)
  Tensor positions_;   // (B*T) i32, rebuilt when B or T change
  Tensor hidden_;      // saved final hidden state (B, T, C), in the compute dtype
  Tensor logits_;      // (B, T, V_local)
  float smoothing_ = 0;
  DropoutState dropout_;
  DropoutSite embed_drop_;    // model.embedding_dropout on tok_emb + pos_emb
  TeacherSlot<Gpt> teacher_;  // distillation teacher, frozen; empty = none
};

}  // namespace tessera::models
