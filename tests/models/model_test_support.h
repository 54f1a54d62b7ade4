#pragma once
// Helpers shared by the model tests that compare with a PyTorch reference through
// testing::run_reference: the parameters go in as "caseC.NAME", the gradients come back as
// "caseC.grad.NAME".

#include <string>

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

}  // namespace tessera::testing
