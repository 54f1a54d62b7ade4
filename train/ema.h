#pragma once
// An exponential moving average of the weights (train.ema_decay, train.ema_warmup;
// docs/RECIPES.md): after every applied optimizer update t (1, 2, ...)
//   ema = d_t * ema + (1 - d_t) * params,  d_t = ema_decay, or min(ema_decay, (1 + t) / (10 + t))
// with warm-up; it starts as a copy of the parameters. Kept in f32 on the training device, in the
// optimizer's layout: the flat (N) buffer, or under ZeRO-1 this rank's shard buffer (the ranges
// of every bucket it owns, distributed/zero_shards.h), so the EMA costs 1/dp of the parameters
// per rank like the Adam moments. Checkpoints store it as tensors of role "ema" with the
// parameters' global names and shapes (checkpoint/checkpoint.h's MomentsRef::ema), so any layout
// reads it back; `tessera eval` and `tessera sample` load it with --weights ema.

#include <cstdint>
#include <memory>

#include "core/tensor.h"
#include "distributed/zero_shards.h"
#include "models/param_store.h"

namespace tessera::train {

class Ema {
 public:
  // zero: the optimizer's shards (nullptr: the whole flat buffer). Allocated on the parameters'
  // device, initialised from `params`.
  Ema(const models::ParamStore& params, const distributed::ZeroShards* zero, float decay,
      bool warmup);

  // The decay of update t (1-based).
  static float decay_at(float decay, bool warmup, int64_t t);

  // After the optimizer's update number t (steps_taken()): folds the current parameters in.
  void update(const models::ParamStore& params, int64_t t);
  // ema = params (a fresh start, or a checkpoint without an EMA).
  void reset(const models::ParamStore& params);

  // (N) or (shard_numel) f32: what checkpoints save and load.
  const Tensor& buffer() const { return ema_; }

 private:
  // Calls f(ema view, params view) for every stretch this rank keeps.
  template <typename F>
  void for_each_range(const models::ParamStore& params, F f) const;

  const distributed::ZeroShards* zero_;
  float decay_;
  bool warmup_;
  Tensor ema_;
};

}  // namespace tessera::train
