// Adapters for ops/attention.h: check dtypes, shapes and devices, then dispatch.
#include "ops/attention.h"

#include "absl/strings/str_cat.h"
#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/attention.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/attention.cuh"
#endif

namespace tessera::ops {
namespace {

struct Dims {
  int64_t B, T, C, H, D;
};

// qkv is (B, T, 3*C) with C divisible by n_heads.
Dims check_qkv(const OpCheck& c, const Tensor& qkv, int n_heads) {
  c.tensor_ndim("qkv", qkv, DType::f32, 3);
  c.expect(n_heads > 0, absl::StrCat("n_heads must be positive, got ", n_heads));
  const int64_t last = qkv.dim(2);
  c.expect(last % (3 * int64_t{n_heads}) == 0 && last > 0,
           absl::StrCat("qkv's last dim must be a positive multiple of 3*n_heads = ", 3 * n_heads,
                        ", got ", qkv.describe()));
  const int64_t C = last / 3;
  return {qkv.dim(0), qkv.dim(1), C, n_heads, C / n_heads};
}

#if TESSERA_WITH_CUDA
// The own kernel's backward needs B*H*T floats of scratch (rowsum(dout * out)); the caching
// allocator makes it free after the first step.
void cuda_attention_backward(const OpCheck& c, const Dims& d, const Tensor& dout, const Tensor& qkv,
                             const Tensor& out, const Tensor& lse, const Tensor& dqkv,
                             bool causal) {
  Tensor delta = Tensor::empty({d.B, d.H, d.T}, DType::f32, c.device());
  cuda::attention_backward(dout.data<float>(), qkv.data<float>(), out.data<float>(),
                           lse.data<float>(), dqkv.data<float>(), delta.data<float>(), d.B, d.T,
                           d.H, d.D, causal, stream_for(c));
}
#endif

}  // namespace

void attention_forward(const Tensor& qkv, const Tensor& out, const Tensor& lse, int n_heads,
                       bool causal) {
  TESSERA_PROFILE("attention");
  OpCheck c("attention_forward");
  const Dims d = check_qkv(c, qkv, n_heads);
  c.tensor("out", out, DType::f32, {d.B, d.T, d.C}).tensor("lse", lse, DType::f32, {d.B, d.H, d.T});
  if (c.device().is_cpu()) {
    cpu::attention_forward(qkv.data<float>(), out.data<float>(), lse.data<float>(), d.B, d.T, d.H,
                           d.D, causal);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::attention_forward(qkv.data<float>(), out.data<float>(), lse.data<float>(), d.B,
                                   d.T, d.H, d.D, causal, stream_for(c)));
  }
}

void attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                        const Tensor& dqkv, int n_heads, bool causal) {
  TESSERA_PROFILE("attention");
  OpCheck c("attention_backward");
  const Dims d = check_qkv(c, qkv, n_heads);
  c.tensor("dout", dout, DType::f32, {d.B, d.T, d.C})
      .tensor("out", out, DType::f32, {d.B, d.T, d.C})
      .tensor("lse", lse, DType::f32, {d.B, d.H, d.T})
      .tensor("dqkv", dqkv, DType::f32, qkv.shape());
  if (c.device().is_cpu()) {
    cpu::attention_backward(dout.data<float>(), qkv.data<float>(), out.data<float>(),
                            lse.data<float>(), dqkv.data<float>(), d.B, d.T, d.H, d.D, causal);
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda_attention_backward(c, d, dout, qkv, out, lse, dqkv, causal));
  }
}

}  // namespace tessera::ops
