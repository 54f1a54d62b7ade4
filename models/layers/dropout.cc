#include "models/layers/dropout.h"

#include "ops/dropout.h"

namespace tessera::models {

void DropoutState::begin_training(const Batch& batch) {
  training = true;
  first = 0;
  const auto it = batch.find("position");
  if (it == batch.end()) return;
  const Tensor& p = it->second;
  TESSERA_CHECK(p.numel() == 1 && p.dtype() == DType::i64 && p.device().is_cpu(),
                "batch \"position\" must be a (1) i64 host tensor, got ", p.describe());
  first = p.data<int64_t>()[0];
}

DropoutSite::DropoutSite(const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  stream_ = h & ~ops::kDropPathStream;  // the top bit tells drop-path's stream apart
}

void DropoutSite::configure(float p, float path_p, const DropoutState* state) {
  TESSERA_CHECK(p >= 0 && p < 1 && path_p >= 0 && path_p < 1,
                "dropout rates must be in [0, 1), got ", p, " and drop-path ", path_p);
  p_ = p;
  path_p_ = path_p;
  state_ = state;
}

bool DropoutSite::active() const {
  return state_ && state_->training && (p_ > 0 || path_p_ > 0);
}

void DropoutSite::apply(const Tensor& x) const {
  if (!active()) return;
  ops::keyed_dropout(x, x, p_, path_p_, {state_->seed, stream_, state_->first});
}

Tensor DropoutSite::backward(const Tensor& dy) const {
  if (!active()) return dy;
  Tensor out = Tensor::empty(dy.shape(), DType::f32, dy.device());
  ops::keyed_dropout(dy, out, p_, path_p_, {state_->seed, stream_, state_->first});
  return out;
}

ops::DropoutKey DropoutSite::key() const {
  return {state_ ? state_->seed : 0, stream_, state_ ? state_->first : 0};
}

float drop_path_rate(float rate, int i, int n) {
  return n > 1 ? rate * float(i) / float(n - 1) : rate;
}

}  // namespace tessera::models
