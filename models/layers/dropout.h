#pragma once
// Dropout and drop-path (stochastic depth) on a transformer block's residual branches, with
// masks keyed by the sample's stream position (ops/dropout.h), so that runs are deterministic,
// independent of ranks and micro-batches, and recomputation (model.recompute_activations,
// CLIP's GradCache) reproduces the masks without storing them.
//
// A model owns one DropoutState and points its blocks' sites at it: the model sets `training`
// and `first` (the batch's "position", the stream position of its row 0) at the start of every
// forward_backward, and clears `training` for evaluation forwards.

#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "models/model.h"
#include "ops/dropout.h"

namespace tessera::models {

struct DropoutState {
  uint64_t seed = 0;  // train.seed (Model::set_seed)
  int64_t first = 0;  // stream position of the batch's row 0
  bool training = false;

  // Training forward on `batch`: first = batch["position"] (a (1) i64 host tensor the trainer
  // adds; 0 when absent).
  void begin_training(const Batch& batch);
  void begin_evaluation() { training = false; }
};

// Training mode for one forward (and its backward) on `batch`; evaluation again when it ends, so
// that forwards outside forward_backward (evaluation, generation) never drop anything.
class TrainingScope {
 public:
  TrainingScope(DropoutState& state, const Batch& batch) : state_(state) {
    state_.begin_training(batch);
  }
  ~TrainingScope() { state_.begin_evaluation(); }
  TrainingScope(const TrainingScope&) = delete;
  TrainingScope& operator=(const TrainingScope&) = delete;

 private:
  DropoutState& state_;
};

// The model's dropout rates (ModelConfig): `p` on every block's branch outputs, drop-path up to
// `drop_path`, `attention` on the attention probabilities (inside the fused kernel,
// ops/attention_dropout.h) and `embedding` on the summed token/patch and position embeddings.
struct DropoutRates {
  float p = 0, drop_path = 0, attention = 0, embedding = 0;
  bool any() const { return p > 0 || drop_path > 0 || attention > 0 || embedding > 0; }
};

// One site: a branch output (B, ...) with B samples. Its Philox stream is a hash of its name
// (FNV-1a), so sites never share masks and a mask does not depend on construction order.
class DropoutSite {
 public:
  explicit DropoutSite(const std::string& name);
  // p: element dropout; path_p: drop-path of the whole branch per sample. state: borrowed.
  void configure(float p, float path_p, const DropoutState* state);
  bool active() const;
  // x (B, ...) masked in place; nothing happens when inactive. Backward: the same on dy.
  void apply(const Tensor& x) const;
  // dy masked into a new tensor (dy itself is still needed by the residual); dy when inactive.
  Tensor backward(const Tensor& dy) const;
  // The element rate and this forward's key (seed, the site's stream, the batch's position), for
  // masks drawn inside other kernels (attention probabilities). Valid while active().
  float p() const { return p_; }
  ops::DropoutKey key() const;

 private:
  uint64_t stream_;
  float p_ = 0, path_p_ = 0;
  const DropoutState* state_ = nullptr;
};

// The drop-path rate of block i of n: linear from 0 (first block) to `rate` (last), as timm.
float drop_path_rate(float rate, int i, int n);

}  // namespace tessera::models
