#include "ops/adamw.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "core/random.h"
#include "core/threads.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

constexpr int kSteps = 5;

class AdamWTest : public testing::DeviceTest {};

struct Case {
  int64_t n;
  ops::AdamWConfig cfg;
  bool mask;
};

// The float exactly (9 significant digits), so that the reference runs with the same
// hyperparameters: 0.999f is 0.999000013, and 1 - beta2 differs from 0.001 by 1.3e-5 relative.
std::string exact(float x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

// A u8 mask with about half the elements set (Philox, so the test is reproducible).
Tensor random_mask(int64_t n, uint64_t stream) {
  Tensor u = testing::uniform({n}, stream, 0.0f, 1.0f);
  Tensor mask = Tensor::empty({n}, DType::u8);
  for (int64_t i = 0; i < n; ++i) mask.data<uint8_t>()[i] = u.data<float>()[i] < 0.5f;
  return mask;
}

// Runs kSteps steps from p0 with zero moments; returns {p, m, v} on the CPU.
std::vector<Tensor> run_steps(const Tensor& p0, const Tensor& grads, const Tensor& mask,
                              const ops::AdamWConfig& cfg, Device device) {
  const int64_t n = p0.numel();
  Tensor p = to_device(p0, device), g_all = to_device(grads, device);
  Tensor m = Tensor::zeros({n}, DType::f32, device), v = Tensor::zeros({n}, DType::f32, device);
  Tensor mask_d = mask.defined() ? to_device(mask, device) : Tensor();
  for (int s = 0; s < kSteps; ++s) {
    ops::adamw_step(p, g_all.flat_view(s * n, {n}), m, v, mask_d, cfg, s + 1);
  }
  return {to_device(p, Device::cpu()), to_device(m, Device::cpu()), to_device(v, Device::cpu())};
}

TEST_P(AdamWTest, MatchesTorchAdamWOverSteps) {
  // Case kinds: PyTorch-like defaults with decay everywhere (no mask); non-default lr, betas,
  // eps and weight decay with a mask; grad_scale != 1 with a mask.
  const ops::AdamWConfig kinds[] = {
      {.lr = 1e-3f, .weight_decay = 0.01f},
      {.lr = 3e-2f, .beta1 = 0.8f, .beta2 = 0.95f, .eps = 1e-6f, .weight_decay = 0.1f},
      {.lr = 1e-2f, .weight_decay = 0.05f, .grad_scale = 0.3f},
  };
  std::vector<Case> cases;
  for (int64_t n : {1, 7, 65, 127, 100003}) {
    for (int k = 0; k < 3; ++k) cases.push_back({n, kinds[k], k != 0});
  }
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& cs = cases[c];
    in[case_key(c, "p0")] = testing::uniform({cs.n}, 10 * c);
    // Gradients of varying size per step, so that m and v see changing inputs.
    in[case_key(c, "grads")] = testing::normal({kSteps, cs.n}, 10 * c + 1, 0.5f);
    if (cs.mask) in[case_key(c, "mask")] = random_mask(cs.n, 10 * c + 2);
    attrs[case_key(c, "lr")] = exact(cs.cfg.lr);
    attrs[case_key(c, "beta1")] = exact(cs.cfg.beta1);
    attrs[case_key(c, "beta2")] = exact(cs.cfg.beta2);
    attrs[case_key(c, "eps")] = exact(cs.cfg.eps);
    attrs[case_key(c, "wd")] = exact(cs.cfg.weight_decay);
    attrs[case_key(c, "grad_scale")] = exact(cs.cfg.grad_scale);
  }
  NamedTensors ref = testing::run_reference("adamw", in, attrs);
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& cs = cases[c];
    const Tensor p0 = in[case_key(c, "p0")];
    const Tensor mask = cs.mask ? in[case_key(c, "mask")] : Tensor();
    std::vector<Tensor> out = run_steps(p0, in[case_key(c, "grads")], mask, cs.cfg, device());
    const std::string what = "case " + std::to_string(c) + " n=" + std::to_string(cs.n);
    EXPECT_ALL_CLOSE(out[0], ref[case_key(c, "p")], 1e-5, "param " + what);
    EXPECT_ALL_CLOSE(out[1], ref[case_key(c, "m")], 1e-5, "m " + what);
    EXPECT_ALL_CLOSE(out[2], ref[case_key(c, "v")], 1e-5, "v " + what);
    // The update alone, at its own scale: |p| ~ 1 hides an update of ~lr. Looser, because the
    // f32 parameter carries ~6e-8 absolute rounding per step that the small update inherits.
    Tensor delta = Tensor::empty({cs.n}, DType::f32);
    for (int64_t i = 0; i < cs.n; ++i) {
      delta.data<float>()[i] = out[0].data<float>()[i] - p0.data<float>()[i];
    }
    EXPECT_ALL_CLOSE(delta, ref[case_key(c, "delta")], 2e-4, "update " + what);
  }
}

TEST_P(AdamWTest, OneAndTwoThreadsBitwiseEqual) {
  const int64_t n = 100003;
  const ops::AdamWConfig cfg{.lr = 1e-2f, .weight_decay = 0.1f, .grad_scale = 0.5f};
  Tensor p0 = testing::uniform({n}, 1), grads = testing::normal({kSteps, n}, 2),
         mask = random_mask(n, 3);
  const int threads = num_threads();
  set_num_threads(1);
  std::vector<Tensor> one = run_steps(p0, grads, mask, cfg, device());
  set_num_threads(2);
  std::vector<Tensor> two = run_steps(p0, grads, mask, cfg, device());
  set_num_threads(threads);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(std::memcmp(one[k].raw_data(), two[k].raw_data(), one[k].nbytes()), 0) << k;
  }
}

TEST_P(AdamWTest, BadArgumentsNameOpAndShapes) {
  auto f32 = [&](int64_t n) { return Tensor::zeros({n}, DType::f32, device()); };
  Tensor p = f32(7), g = f32(7), m = f32(7), v = f32(7);
  const ops::AdamWConfig cfg{.lr = 1e-3f};
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([&] { ops::adamw_step(p, f32(6), m, v, Tensor(), cfg, 1); }),
            "adamw_step: grad must be f32(7), got f32(6) cpu");
  EXPECT_EQ(message([&] { ops::adamw_step(p, g, m, f32(8), Tensor(), cfg, 1); }),
            "adamw_step: v must be f32(7), got f32(8) cpu");
  EXPECT_EQ(message([&] { ops::adamw_step(p, g, m, v, f32(7), cfg, 1); }),
            "adamw_step: decay_mask must be u8, got f32(7) cpu");
  EXPECT_EQ(message([&] {
              ops::adamw_step(p, g, m, v, Tensor::zeros({6}, DType::u8, device()), cfg, 1);
            }),
            "adamw_step: decay_mask must be u8(7), got u8(6) cpu");
  EXPECT_EQ(message([&] { ops::adamw_step(p, g, m, v, Tensor(), cfg, 0); }),
            "adamw_step: step must be >= 1 (1-based, for bias correction), got 0");
  EXPECT_EQ(
      message([&] { ops::adamw_step(p, g, m, v, Tensor(), {.lr = 1e-3f, .beta2 = 1.0f}, 1); }),
      "adamw_step: beta2 must be in [0, 1), got 1");
}

TESSERA_INSTANTIATE_DEVICE_TESTS(AdamWTest);

}  // namespace
}  // namespace tessera
