#pragma once
// What the ZeRO-1 suites share (zero_test.cc over MPI ranks, zero_device_test.cc over thread
// ranks on every device): a parameter store of awkward sizes and the optimizer settings.

#include <memory>

#include "models/param_store.h"
#include "proto/config.pb.h"

namespace tessera::train::testing_support {

// Three parameters of odd sizes (185, 91 and 13 elements: buckets and shards never divide them
// evenly), one of each weight-decay group, initialised with seed 7.
inline std::unique_ptr<models::ParamStore> odd_store(Device device = Device::cpu()) {
  auto s = std::make_unique<models::ParamStore>();
  s->add({"emb", {37, 5}, -1, models::Init::normal(0.5f), models::ParamGroup::kEmbedding});
  s->add({"w", {7, 13}, -1, models::Init::normal(0.5f), models::ParamGroup::kWeight});
  s->add({"b", {13}, -1, models::Init::normal(0.5f), models::ParamGroup::kNormOrBias});
  s->finalize(device);
  s->init(7);
  return s;
}

// AdamW settings of both suites; grad_clip 0 = off.
inline config::OptimConfig zero_test_optim(float grad_clip) {
  config::OptimConfig oc;
  oc.set_lr(0.01f);
  oc.set_beta1(0.9f);
  oc.set_beta2(0.95f);
  oc.set_eps(1e-8f);
  oc.set_weight_decay(0.1f);
  oc.set_grad_clip(grad_clip);
  return oc;
}

}  // namespace tessera::train::testing_support
