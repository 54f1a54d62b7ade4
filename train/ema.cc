#include "train/ema.h"

#include <algorithm>

#include "ops/elementwise.h"

namespace tessera::train {

Ema::Ema(const models::ParamStore& params, const distributed::ZeroShards* zero, float decay,
         bool warmup)
    : zero_(zero), decay_(decay), warmup_(warmup) {
  ema_ = Tensor::zeros({zero ? zero->shard_numel : params.numel()}, DType::f32, params.device());
  reset(params);
}

float Ema::decay_at(float decay, bool warmup, int64_t t) {
  if (!warmup) return decay;
  return std::min(decay, float(1 + t) / float(10 + t));
}

template <typename F>
void Ema::for_each_range(const models::ParamStore& params, F f) const {
  if (!zero_) {
    f(ema_, params.params());
    return;
  }
  // ZeRO-3: the parameters exist only as this rank's shard, in the optimizer's shard layout (the
  // one zero_ describes): element for element the EMA's.
  const bool sharded = params.params_sharded();
  TESSERA_CHECK(!sharded || params.param_shards().numel() >= zero_->shard_numel,
                "Ema: sharded parameters (", params.param_shards().numel(),
                " elements) not in the layout of ", zero_->describe());
  const Tensor& p = sharded ? params.param_shards() : params.params();
  for (const auto& b : zero_->buckets) {
    if (b.own() == 0) continue;
    f(ema_.flat_view(b.offset, {b.own()}),
      p.flat_view(sharded ? b.offset : b.own_begin, {b.own()}));
  }
}

void Ema::reset(const models::ParamStore& params) {
  for_each_range(params, [](const Tensor& e, const Tensor& p) { copy(p, e); });
}

void Ema::update(const models::ParamStore& params, int64_t t) {
  const float d = decay_at(decay_, warmup_, t);
  for_each_range(params, [d](const Tensor& e, const Tensor& p) {
    // e = d * e + (1 - d) * p, as two f32 products and one sum per element.
    Tensor share = Tensor::empty(p.shape(), DType::f32, p.device());
    ops::scale(p, 1.0f - d, share);
    ops::scale(e, d, e);
    ops::add_inplace(e, share);
  });
}

}  // namespace tessera::train
