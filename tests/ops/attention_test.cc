#include "ops/attention.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>

#include "core/threads.h"
#include "ops/matmul.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

#if TESSERA_WITH_CUDNN
#include <cudnn.h>

#include "ops/cuda/attention_cudnn.h"
#endif

namespace tessera {
namespace {

using testing::case_key;

class AttentionTest : public testing::DeviceTest {};

struct Case {
  int64_t B, T, H, D;
  bool causal;
  std::string name() const {
    return absl::StrCat("B=", B, " T=", T, " H=", H, " D=", D, causal ? " causal" : "");
  }
};

std::vector<Case> cases() {
  // T = 513 takes nine 64-row tiles with a ragged last one; D = 20 and 80 exercise the
  // padding of head dims to multiples of 16 and the split of wide products.
  const std::vector<Case> shapes = {
      {1, 1, 1, 16, false},   {2, 7, 3, 16, false},   {3, 65, 2, 64, false}, {1, 127, 3, 16, false},
      {2, 513, 1, 64, false}, {1, 513, 3, 16, false}, {3, 65, 3, 20, false}, {1, 33, 1, 80, false}};
  std::vector<Case> all;
  for (const Case& c : shapes) {
    all.push_back(c);
    all.push_back({c.B, c.T, c.H, c.D, true});
  }
  return all;
}

TEST_P(AttentionTest, MatchesTorch) {
  const std::vector<Case> all = cases();
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t i = 0; i < all.size(); ++i) {
    const Case& c = all[i];
    in[case_key(i, "qkv")] = testing::normal({c.B, c.T, 3 * c.H * c.D}, 2 * i);
    in[case_key(i, "dout")] = testing::uniform({c.B, c.T, c.H * c.D}, 2 * i + 1);
    attrs[case_key(i, "n_heads")] = std::to_string(c.H);
    attrs[case_key(i, "causal")] = c.causal ? "1" : "0";
  }
  NamedTensors ref = testing::run_reference("attention", in, attrs);
  for (size_t i = 0; i < all.size(); ++i) {
    const Case& c = all[i];
    Tensor qkv = to_device(in[case_key(i, "qkv")], device());
    Tensor dout = to_device(in[case_key(i, "dout")], device());
    Tensor out = Tensor::empty({c.B, c.T, c.H * c.D}, DType::f32, device());
    Tensor lse = Tensor::empty({c.B, c.H, c.T}, DType::f32, device());
    Tensor dqkv = Tensor::empty(qkv.shape(), DType::f32, device());
    ops::attention_forward(qkv, out, lse, static_cast<int>(c.H), c.causal);
    EXPECT_ALL_CLOSE(out, ref[case_key(i, "out")], 1e-5, "out " + c.name());
    EXPECT_ALL_CLOSE(lse, ref[case_key(i, "lse")], 1e-5, "lse " + c.name());
    // dqkv is written: garbage in it must not leak through.
    fill_uniform(dqkv, 7, 7, 1e3f, 2e3f);
    ops::attention_backward(dout, qkv, out, lse, dqkv, static_cast<int>(c.H), c.causal);
    EXPECT_ALL_CLOSE(dqkv, ref[case_key(i, "dqkv")], 1e-5, "dqkv " + c.name());
  }
}

// L(x) = sum(w * attention(x)) in double; its directional derivative along u by central
// differences against <dqkv, u> from attention_backward with dout = w.
// CPU only (host-side finite differences).
TEST(AttentionCpu, BackwardMatchesFiniteDifferences) {
  for (bool causal : {false, true}) {
    const int64_t B = 2, T = 70, H = 3, D = 16, C = H * D;
    Tensor x = testing::normal({B, T, 3 * C}, 100);
    Tensor u = testing::uniform({B, T, 3 * C}, 101);
    Tensor w = testing::uniform({B, T, C}, 102);
    Tensor out = Tensor::empty({B, T, C}, DType::f32), lse = Tensor::empty({B, H, T}, DType::f32);
    auto objective = [&](double h) {
      Tensor xh = Tensor::empty(x.shape(), DType::f32);
      for (int64_t i = 0; i < x.numel(); ++i) {
        xh.data<float>()[i] = static_cast<float>(x.data<float>()[i] + h * u.data<float>()[i]);
      }
      ops::attention_forward(xh, out, lse, H, causal);
      double sum = 0;
      for (int64_t i = 0; i < out.numel(); ++i)
        sum += double(w.data<float>()[i]) * out.data<float>()[i];
      return sum;
    };
    const double h = 1e-2;
    const double numeric = (objective(h) - objective(-h)) / (2 * h);
    Tensor dqkv = Tensor::empty(x.shape(), DType::f32);
    ops::attention_forward(x, out, lse, H, causal);
    ops::attention_backward(w, x, out, lse, dqkv, H, causal);
    double analytic = 0;
    for (int64_t i = 0; i < x.numel(); ++i)
      analytic += double(dqkv.data<float>()[i]) * u.data<float>()[i];
    EXPECT_NEAR(numeric, analytic, 1e-3 * std::abs(analytic))
        << (causal ? "causal" : "bidirectional");
  }
}

// More threads than heads switches backward to the per-tile split; results must not change.
// CPU only (CPU threading).
TEST(AttentionCpu, ThreadCountDoesNotChangeResults) {
  const int64_t B = 1, T = 200, H = 2, D = 64, C = H * D;
  Tensor qkv = testing::normal({B, T, 3 * C}, 200);
  Tensor dout = testing::uniform({B, T, C}, 201);
  const int saved = num_threads();
  for (bool causal : {false, true}) {
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2, 4}) {
      set_num_threads(threads);
      Tensor out = Tensor::empty({B, T, C}, DType::f32), lse = Tensor::empty({B, H, T}, DType::f32);
      Tensor dqkv = Tensor::empty(qkv.shape(), DType::f32);
      ops::attention_forward(qkv, out, lse, H, causal);
      ops::attention_backward(dout, qkv, out, lse, dqkv, H, causal);
      std::vector<float> all(out.data<float>(), out.data<float>() + out.numel());
      all.insert(all.end(), lse.data<float>(), lse.data<float>() + lse.numel());
      all.insert(all.end(), dqkv.data<float>(), dqkv.data<float>() + dqkv.numel());
      results.push_back(std::move(all));
    }
    for (size_t i = 1; i < results.size(); ++i) {
      EXPECT_EQ(0, std::memcmp(results[0].data(), results[i].data(), results[0].size() * 4))
          << "thread split " << i << (causal ? " causal" : "");
    }
  }
  set_num_threads(saved);
}

void expect_error(const std::function<void()>& fn, const std::string& text) {
  try {
    fn();
    ADD_FAILURE() << "no error, expected: " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST_P(AttentionTest, BadArgumentsNameOpAndShapes) {
  const Device d = device();
  Tensor qkv = Tensor::zeros({2, 5, 24}, DType::f32, d);  // C = 8: 2 heads of 4
  Tensor out = Tensor::zeros({2, 5, 8}, DType::f32, d);
  Tensor lse = Tensor::zeros({2, 2, 5}, DType::f32, d);
  Tensor dqkv = Tensor::zeros({2, 5, 24}, DType::f32, d);
  expect_error([&] { ops::attention_forward(qkv, out, lse, 3, false); },
               "attention_forward: qkv's last dim must be a positive multiple of 3*n_heads = 9, "
               "got f32(2, 5, 24)");
  expect_error(
      [&] {
        ops::attention_forward(qkv, Tensor::zeros({2, 5, 7}, DType::f32, d), lse, 2, true);
      },
      "attention_forward: out must be f32(2, 5, 8), got f32(2, 5, 7)");
  expect_error(
      [&] {
        ops::attention_forward(qkv, out, Tensor::zeros({2, 5, 2}, DType::f32, d), 2, true);
      },
      "attention_forward: lse must be f32(2, 2, 5), got f32(2, 5, 2)");
  expect_error(
      [&] {
        ops::attention_backward(out, qkv, out, lse, Tensor::zeros({2, 5, 8}, DType::f32, d), 2,
                                false);
      },
      "attention_backward: dqkv must be f32(2, 5, 24), got f32(2, 5, 8)");
  expect_error([&] { ops::attention_backward(lse, qkv, out, lse, dqkv, 2, false); },
               "attention_backward: dout must be f32(2, 5, 8), got f32(2, 2, 5)");
  expect_error(
      [&] {
        ops::attention_forward(Tensor::zeros({10, 24}, DType::f32, d), out, lse, 2, false);
      },
      "attention_forward: qkv must have 3 dimensions, got f32(10, 24)");
}

TESSERA_INSTANTIATE_DEVICE_TESTS(AttentionTest);

#if TESSERA_WITH_CUDA
// CUDA-only paths, compared on the GPU against the f32 own kernel (itself checked against PyTorch
// by MatchesTorch/cuda): bf16 storage in the own kernel, and cuDNN's fused attention (forced with
// AttentionBackend::kCudnn, so a cuDNN failure is an error here, not a silent fallback).
namespace cuda_paths {

Tensor to_dtype(const Tensor& t, DType dtype) {
  Tensor out = Tensor::empty(t.shape(), dtype, t.device());
  ops::convert(t, out);
  return out;
}

// max |got - want| / max |want|, on the host.
double rel_error(const Tensor& got_any, const Tensor& want_any) {
  const Tensor got = to_device(to_dtype(got_any, DType::f32), Device::cpu());
  const Tensor want = to_device(want_any, Device::cpu());
  double diff = 0, scale = 1e-30;
  for (int64_t i = 0; i < want.numel(); ++i) {
    diff = std::max(diff, double(std::abs(got.data<float>()[i] - want.data<float>()[i])));
    scale = std::max(scale, double(std::abs(want.data<float>()[i])));
  }
  return diff / scale;
}

struct Result {
  Tensor out, lse, dqkv;
};

Result run(const Tensor& qkv, const Tensor& dout, int64_t H, bool causal) {
  const int64_t B = qkv.dim(0), T = qkv.dim(1), C = qkv.dim(2) / 3;
  Result r{Tensor::empty({B, T, C}, qkv.dtype(), qkv.device()),
           Tensor::empty({B, H, T}, DType::f32, qkv.device()),
           Tensor::empty(qkv.shape(), qkv.dtype(), qkv.device())};
  ops::attention_forward(qkv, r.out, r.lse, int(H), causal);
  ops::attention_backward(dout, qkv, r.out, r.lse, r.dqkv, int(H), causal);
  return r;
}

class AttentionCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
  void TearDown() override { ops::set_attention_backend(ops::AttentionBackend::kAuto); }

  // bf16 storage (with `backend`) against the f32 own kernel on the same rounded inputs.
  void compare(ops::AttentionBackend backend, double tol) {
    struct Shape {
      int64_t B, T, H, D;
    };
    for (Shape s : {Shape{2, 130, 2, 64}, Shape{1, 257, 3, 32}, Shape{1, 64, 2, 128}}) {
      for (bool causal : {false, true}) {
        const std::string what =
            absl::StrCat("B=", s.B, " T=", s.T, " H=", s.H, " D=", s.D, causal ? " causal" : "");
        const Device gpu = Device::cuda(0);
        const int64_t C = s.H * s.D;
        // Inputs rounded to bf16 first, so both runs see the same values.
        Tensor qkv16 = to_dtype(to_device(testing::normal({s.B, s.T, 3 * C}, 7), gpu), DType::bf16);
        Tensor dout16 = to_dtype(to_device(testing::uniform({s.B, s.T, C}, 8), gpu), DType::bf16);
        ops::set_attention_backend(ops::AttentionBackend::kOwn);
        const Result want =
            run(to_dtype(qkv16, DType::f32), to_dtype(dout16, DType::f32), s.H, causal);
        ops::set_attention_backend(backend);
        const Result got = run(qkv16, dout16, s.H, causal);
        EXPECT_LT(rel_error(got.out, want.out), tol) << what << " out";
        EXPECT_LT(rel_error(got.lse, want.lse), tol) << what << " lse";
        EXPECT_LT(rel_error(got.dqkv, want.dqkv), 2 * tol) << what << " dqkv";
      }
    }
  }
};

TEST_F(AttentionCuda, Bf16OwnKernelMatchesF32) {
  compare(ops::AttentionBackend::kOwn, 2e-2);
}

TEST_F(AttentionCuda, CudnnFusedAttentionMatchesOwnKernel) {
#if !TESSERA_WITH_CUDNN
  GTEST_SKIP() << "built without cuDNN";
#endif
  compare(ops::AttentionBackend::kCudnn, 2e-2);
}

#if TESSERA_WITH_CUDNN
// The cuDNN graphs are validated by cuDNN itself on the host (every descriptor and the
// operation graph finalize; no engine is chosen), so a malformed graph shows here, without a
// GPU. The forms cuDNN frontend 1.x emits must be valid; which one an engine accepts is then up
// to the GPU (AttentionCuda.CudnnFusedAttentionMatchesOwnKernel).
TEST(CudnnSdpaGraphs, FinalizeOnTheHost) {
  for (bool causal : {false, true}) {
    for (auto [B, T, H, D] : {std::array<int64_t, 4>{2, 130, 2, 64}, {1, 257, 3, 32}}) {
      const std::vector<std::string> lines = ops::cuda::cudnn_sdpa_graph_report(B, T, H, D, causal);
      std::string all;
      for (const std::string& l : lines) all += "\n  " + l;
      const std::string what =
          absl::StrCat("B=", B, " T=", T, " H=", H, " D=", D, causal ? " causal" : "", all);
      ASSERT_FALSE(lines.empty()) << what;
      // The first line for a form (the first index type when causal) must read "...: ok".
      auto ok = [&](const std::string& form) {
        for (const std::string& l : lines) {
          if (l.rfind(form + ":", 0) == 0 || l.rfind(form + ",", 0) == 0)
            return l.size() >= 4 && l.substr(l.size() - 4) == ": ok";
        }
        return false;
      };
      EXPECT_TRUE(ok("forward composite, P bf16")) << what;
      EXPECT_TRUE(ok("backward composite, direct dQ")) << what;
      EXPECT_TRUE(ok("backward composite, dQ accumulator")) << what;
      // cuDNN frontend 1.x's first choice without a mask, where this cuDNN has the operation.
      if (!causal && cudnnGetVersion() >= 91301) {
        EXPECT_TRUE(ok("forward unified SDPA_FWD op")) << what;
      }
    }
  }
}
#endif

TEST(AttentionBf16, OnCpuIsRefused) {
  Tensor qkv = Tensor::zeros({1, 4, 24}, DType::bf16), out = Tensor::zeros({1, 4, 8}, DType::bf16);
  Tensor lse = Tensor::zeros({1, 2, 4}, DType::f32);
  expect_error([&] { ops::attention_forward(qkv, out, lse, 2, false); },
               "bf16 storage runs on CUDA");
}

}  // namespace cuda_paths
#endif

}  // namespace
}  // namespace tessera
