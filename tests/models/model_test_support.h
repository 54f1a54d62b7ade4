#pragma once
// Helpers shared by the model tests that compare with a PyTorch reference through
// testing::run_reference: the parameters go in as "caseC.NAME", the gradients come back as
// "caseC.grad.NAME".

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "models/factory.h"
#include "models/model.h"
#include "models/param_store.h"
#include "tests/support/compare.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera::testing {

// Every parameter of `store`, under its global name, as an input of reference case c.
inline void add_param_inputs(NamedTensors& in, int c, const models::ParamStore& store) {
  for (const auto& info : store.infos()) {
    in[case_key(c, info.spec.name)] = store.param(store.find(info.spec.name));
  }
}

// Every parameter's gradient equals the reference's grad.NAME of case c to `rtol`.
inline void expect_grads_match(const models::ParamStore& store, NamedTensors& ref, int c,
                               double rtol) {
  for (const auto& info : store.infos()) {
    const std::string& name = info.spec.name;
    EXPECT_ALL_CLOSE(store.grad(store.find(name)), ref[case_key(c, "grad." + name)], rtol,
                     "case " + std::to_string(c) + " grad " + name);
  }
}

// The batch with every tensor copied to `device`: a batch as the trainer on that device passes it.
inline models::Batch batch_on(const models::Batch& batch, Device device) {
  models::Batch out;
  for (const auto& [name, t] : batch) out[name] = to_device(t, device);
  return out;
}

// Two stores (any devices) hold bitwise the same parameters under the same names and layout.
inline void expect_same_params(const models::ParamStore& actual,
                               const models::ParamStore& expected) {
  ASSERT_EQ(actual.numel(), expected.numel());
  const Tensor a = to_device(actual.params(), Device::cpu());
  const Tensor e = to_device(expected.params(), Device::cpu());
  EXPECT_EQ(0, std::memcmp(a.raw_data(), e.raw_data(), a.nbytes()))
      << "parameters on " << actual.params().device().str() << " differ from those on "
      << expected.params().device().str();
}

// Every parameter's gradient in `actual` equals the one of the same global name in `expected`.
inline void expect_same_grads(const models::ParamStore& actual, const models::ParamStore& expected,
                              double rtol, const std::string& what) {
  for (const auto& info : actual.infos()) {
    const std::string& name = info.spec.name;
    const models::ParamId id = expected.find(name);
    ASSERT_GE(id, 0) << what << ": no parameter " << name;
    EXPECT_ALL_CLOSE(actual.grad(actual.find(name)), expected.grad(id), rtol,
                     what + ": grad " + name);
  }
}

// The model `config` describes, built by the factory on `device` and initialised with `seed` like
// `cpu` was: the parameters are checked bitwise equal to cpu's (a device init stages through the
// host). M: the model class (Gpt, Vit, Clip, Dit).
template <class M>
M& build_twin(const config::ModelConfig& config, Device device, uint64_t seed, M& cpu,
              std::unique_ptr<models::Model>& holder) {
  holder = models::make_model(config, nullptr, device);
  EXPECT_EQ(holder->device(), device);
  holder->params().init(seed);
  expect_same_params(holder->params(), cpu.params());
  return dynamic_cast<M&>(*holder);
}

// One micro-batch through `model`, given on the host and then on the model's device:
// forward_loss equals `want_loss` (1e-5 relative), `outputs` checks what the forward left behind
// (logits, embeddings), and forward_backward gives the same loss and gradients equal to
// reference case 0's and to `cpu`'s (1e-4: f32 on both sides, other summation orders; each
// holds 1e-4 against the float64 reference).
inline void expect_twin_matches(models::Model& model, const models::Batch& batch, double want_loss,
                                NamedTensors& ref, const models::ParamStore& cpu,
                                const std::function<void()>& outputs = {}) {
  for (const bool on_device : {false, true}) {
    SCOPED_TRACE(on_device ? "batch on the device" : "batch on the host");
    const models::Batch b = on_device ? batch_on(batch, model.device()) : batch;
    const models::LossResult eval = model.forward_loss(b);
    EXPECT_NEAR(eval.loss, want_loss, 1e-5 * std::fabs(want_loss));
    if (outputs) outputs();
    model.params().zero_grads();
    const models::LossResult train = model.forward_backward(b, 1.0f);
    EXPECT_EQ(train.loss, eval.loss);
    EXPECT_EQ(train.count, eval.count);
    expect_grads_match(model.params(), ref, 0, 1e-4);
    expect_same_grads(model.params(), cpu, 1e-4, "the CPU model");
  }
}

}  // namespace tessera::testing
