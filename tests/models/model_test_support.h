#pragma once
// Helpers shared by the model tests that compare with a PyTorch reference through
// testing::run_reference: the parameters go in as "caseC.NAME", the gradients come back as
// "caseC.grad.NAME".

#include <cstring>
#include <string>

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

}  // namespace tessera::testing
