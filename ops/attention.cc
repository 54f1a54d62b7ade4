// Adapters for ops/attention.h: check dtypes, shapes and devices, then dispatch (CPU kernel; on
// CUDA the own kernel or cuDNN's fused attention, see attention_backend()).
#include "ops/attention.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/bf16.h"
#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/attention.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/attention.cuh"
#endif
#if TESSERA_WITH_CUDNN
#include "ops/cuda/attention_cudnn.h"
#endif

namespace tessera::ops {
namespace {

struct Dims {
  int64_t B, T, C, H, D;
};

// qkv is (B, T, 3*C) with C divisible by n_heads; f32, or bf16 (CUDA only, checked by caller).
Dims check_qkv(const OpCheck& c, const Tensor& qkv, int n_heads) {
  const DType st = qkv.defined() && qkv.dtype() == DType::bf16 ? DType::bf16 : DType::f32;
  c.tensor_ndim("qkv", qkv, st, 3);
  c.expect(n_heads > 0, absl::StrCat("n_heads must be positive, got ", n_heads));
  const int64_t last = qkv.dim(2);
  c.expect(last % (3 * int64_t{n_heads}) == 0 && last > 0,
           absl::StrCat("qkv's last dim must be a positive multiple of 3*n_heads = ", 3 * n_heads,
                        ", got ", qkv.describe()));
  const int64_t C = last / 3;
  return {qkv.dim(0), qkv.dim(1), C, n_heads, C / n_heads};
}

void check_bf16_device(const OpCheck& c, DType st) {
  if (st == DType::bf16 && c.device().is_cpu())
    c.fail("bf16 storage runs on CUDA only; the CPU kernel takes f32 (convert first)");
}

AttentionBackend backend_from_env() {
  const char* v = std::getenv("TESSERA_ATTENTION");
  if (!v || !*v || std::strcmp(v, "auto") == 0) return AttentionBackend::kAuto;
  if (std::strcmp(v, "own") == 0) return AttentionBackend::kOwn;
  if (std::strcmp(v, "cudnn") == 0) return AttentionBackend::kCudnn;
  throw_error(absl::StrCat("TESSERA_ATTENTION=", v, ": expected auto, own or cudnn"));
}

std::atomic<int> g_backend{-1};

#if TESSERA_WITH_CUDA
// kAuto falls back to the own kernel when cuDNN cannot take a call; the first fallback for each
// reason is reported once on stderr, so a slow run is explained.
bool use_cudnn(const Dims& d, const char* op) {
  const AttentionBackend b = attention_backend();
  if (b == AttentionBackend::kOwn) return false;
#if TESSERA_WITH_CUDNN
  const std::string why = cuda::cudnn_sdpa_unsupported(d.B, d.T, d.H, d.D);
#else
  const std::string why = "this build has no cuDNN";
#endif
  if (why.empty()) return true;
  TESSERA_CHECK(b != AttentionBackend::kCudnn, op, ": TESSERA_ATTENTION=cudnn but cuDNN's fused ",
                "attention cannot take this call: ", why);
  return false;
}

[[maybe_unused]] void note_fallback(const std::string& reason) {
  static std::mutex mutex;
  static std::set<std::string> seen;
  std::lock_guard<std::mutex> lock(mutex);
  if (seen.insert(reason).second)
    std::cerr << "tessera: attention falls back to the own CUDA kernel: " << reason << "\n";
}

#if TESSERA_WITH_CUDNN
// Runs `call` (one cuDNN graph, given a workspace allocator) when cuDNN takes this call. False:
// the own kernel runs instead (backend kOwn, a shape cuDNN refuses, or under kAuto a cuDNN
// failure, reported once by note_fallback).
template <typename Call>
bool run_cudnn(const OpCheck& c, const Dims& d, const char* op, const Call& call) {
  if (!use_cudnn(d, op)) return false;
  Tensor workspace;
  auto allocate = [&](size_t bytes) {
    workspace = Tensor::empty({int64_t(bytes)}, DType::u8, c.device());
    return workspace.raw_data();
  };
  try {
    call(allocate);
    return true;
  } catch (const Error& e) {
    if (attention_backend() == AttentionBackend::kCudnn) throw;
    note_fallback(e.what());
    return false;
  }
}
#endif

void cuda_attention_forward(const OpCheck& c, const Dims& d, const Tensor& qkv, const Tensor& out,
                            const Tensor& lse, bool causal, const AttentionDropout& drop) {
  cudaStream_t s = stream_for(c);
  if (qkv.dtype() == DType::f32) {
    cuda::attention_forward(qkv.data<float>(), out.data<float>(), lse.data<float>(), d.B, d.T, d.H,
                            d.D, causal, drop, s);
    return;
  }
#if TESSERA_WITH_CUDNN
  // Dropout runs on the own kernel (ops/attention.h: cuDNN cannot draw the keyed masks).
  if (!drop.active() && run_cudnn(c, d, "attention_forward", [&](const auto& allocate) {
        cuda::cudnn_sdpa_forward(qkv.data<bf16>(), out.data<bf16>(), lse.data<float>(), d.B, d.T,
                                 d.H, d.D, causal, allocate, s);
      }))
    return;
#else
  if (!drop.active()) use_cudnn(d, "attention_forward");  // kCudnn: this build has none
#endif
  cuda::attention_forward_bf16(reinterpret_cast<const uint16_t*>(qkv.data<bf16>()),
                               reinterpret_cast<uint16_t*>(out.data<bf16>()), lse.data<float>(),
                               d.B, d.T, d.H, d.D, causal, drop, s);
}

// The own kernel's backward needs B*H*T floats of scratch (rowsum(dout * out)); the caching
// allocator makes it free after the first step. cuDNN's lse (its softmax stats) has the same
// meaning as the own kernel's, so either forward pairs with either backward.
void cuda_attention_backward(const OpCheck& c, const Dims& d, const Tensor& dout, const Tensor& qkv,
                             const Tensor& out, const Tensor& lse, const Tensor& dqkv, bool causal,
                             const AttentionDropout& drop) {
  cudaStream_t s = stream_for(c);
  Tensor delta = Tensor::empty({d.B, d.H, d.T}, DType::f32, c.device());
  if (qkv.dtype() == DType::f32) {
    cuda::attention_backward(dout.data<float>(), qkv.data<float>(), out.data<float>(),
                             lse.data<float>(), dqkv.data<float>(), delta.data<float>(), d.B, d.T,
                             d.H, d.D, causal, drop, s);
    return;
  }
#if TESSERA_WITH_CUDNN
  if (!drop.active() && run_cudnn(c, d, "attention_backward", [&](const auto& allocate) {
        cuda::cudnn_sdpa_backward(dout.data<bf16>(), qkv.data<bf16>(), out.data<bf16>(),
                                  lse.data<float>(), dqkv.data<bf16>(), d.B, d.T, d.H, d.D, causal,
                                  allocate, s);
      }))
    return;
#else
  if (!drop.active()) use_cudnn(d, "attention_backward");
#endif
  auto bits = [](const Tensor& t) { return reinterpret_cast<uint16_t*>(t.data<bf16>()); };
  cuda::attention_backward_bf16(bits(dout), bits(qkv), bits(out), lse.data<float>(), bits(dqkv),
                                delta.data<float>(), d.B, d.T, d.H, d.D, causal, drop, s);
}
#endif

// The dropout of a call on n_heads heads: heads defaults to n_heads (no TP split); checked.
AttentionDropout checked_dropout(const OpCheck& c, const AttentionDropout& drop, int n_heads) {
  AttentionDropout d = drop;
  if (!d.active()) return d;
  if (d.heads == 0) d.heads = n_heads;
  c.expect(d.p < 1, absl::StrCat("attention dropout p must be in [0, 1), got ", d.p));
  c.expect(d.head_offset >= 0 && d.head_offset + n_heads <= d.heads,
           absl::StrCat("attention dropout: heads [", d.head_offset, ", ", d.head_offset + n_heads,
                        ") are outside the layer's ", d.heads));
  return d;
}

}  // namespace

void set_attention_backend(AttentionBackend backend) {
  g_backend.store(int(backend));
}

AttentionBackend attention_backend() {
  int b = g_backend.load();
  if (b < 0) {
    b = int(backend_from_env());
    g_backend.store(b);
  }
  return AttentionBackend(b);
}

void attention_forward(const Tensor& qkv, const Tensor& out, const Tensor& lse, int n_heads,
                       bool causal, const AttentionDropout& dropout) {
  TESSERA_PROFILE("attention");
  OpCheck c("attention_forward");
  const Dims d = check_qkv(c, qkv, n_heads);
  const DType st = qkv.dtype();
  c.tensor("out", out, st, {d.B, d.T, d.C}).tensor("lse", lse, DType::f32, {d.B, d.H, d.T});
  check_bf16_device(c, st);
  const AttentionDropout drop = checked_dropout(c, dropout, n_heads);
  if (c.device().is_cpu()) {
    cpu::attention_forward(qkv.data<float>(), out.data<float>(), lse.data<float>(), d.B, d.T, d.H,
                           d.D, causal, drop);
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda_attention_forward(c, d, qkv, out, lse, causal, drop));
  }
}

void attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                        const Tensor& dqkv, int n_heads, bool causal,
                        const AttentionDropout& dropout) {
  TESSERA_PROFILE("attention");
  OpCheck c("attention_backward");
  const Dims d = check_qkv(c, qkv, n_heads);
  const DType st = qkv.dtype();
  c.tensor("dout", dout, st, {d.B, d.T, d.C})
      .tensor("out", out, st, {d.B, d.T, d.C})
      .tensor("lse", lse, DType::f32, {d.B, d.H, d.T})
      .tensor("dqkv", dqkv, st, qkv.shape());
  check_bf16_device(c, st);
  const AttentionDropout drop = checked_dropout(c, dropout, n_heads);
  if (c.device().is_cpu()) {
    cpu::attention_backward(dout.data<float>(), qkv.data<float>(), out.data<float>(),
                            lse.data<float>(), dqkv.data<float>(), d.B, d.T, d.H, d.D, causal,
                            drop);
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda_attention_backward(c, d, dout, qkv, out, lse, dqkv, causal, drop));
  }
}

}  // namespace tessera::ops
