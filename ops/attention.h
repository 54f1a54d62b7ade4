#pragma once
// Scaled dot-product multi-head self-attention on the fused QKV projection, memory-efficient
// (flash-attention style): the (T, T) score matrix is never stored; backward recomputes it from
// q, k and the per-query log-sum-exp that forward keeps.
//
// Layout: qkv's last dim is [q | k | v], each C = n_heads * D wide and laid out as (H, D), as the
// fused QKV linear writes it. Scores are q·k / sqrt(D); with `causal`, query t sees keys <= t.
//
// Dtypes: f32 everywhere; on CUDA also bf16 storage for qkv, out, dout and dqkv (lse stays f32,
// every accumulation is f32). Kernels on CUDA (attention_backend()): bf16 goes to cuDNN's fused
// flash attention when it takes the shape, else to the own tiled kernel, which also runs every
// f32 call and is the reference the cuDNN path is tested against.
//
// Dropout on the probabilities (`dropout`, ops/attention_dropout.h): masks drawn inside the
// softmax from keyed Philox values, so nothing is stored and backward (given the same `dropout`)
// redraws them. With p > 0 bf16 calls on CUDA run the own kernel, not cuDNN: cuDNN's dropout
// draws its own Philox stream from a seed and offset per call, which cannot follow tessera's
// keying by (seed, site, sample position, element). With p = 0 nothing changes.

#include "core/tensor.h"
#include "ops/attention_dropout.h"

namespace tessera::ops {

enum class AttentionBackend {
  kAuto,   // bf16 on CUDA: cuDNN when it takes the shape (else the own kernel); f32: own kernel
  kOwn,    // always the own kernel
  kCudnn,  // bf16 on CUDA must run on cuDNN (an error when it cannot); for tests and benchmarks
};
// Process-wide. The default comes from the environment variable TESSERA_ATTENTION
// (auto | own | cudnn), else kAuto.
void set_attention_backend(AttentionBackend backend);
AttentionBackend attention_backend();

void attention_forward(const Tensor& qkv,  // (B, T, 3*C) f32 or bf16, C = n_heads * D
                       const Tensor& out,  // (B, T, C) qkv's dtype, heads in (H, D) order
                       const Tensor& lse,  // (B, H, T) f32: log-sum-exp of each query's scores
                       int n_heads, bool causal, const AttentionDropout& dropout = {});

// Contract: no parameters; the activation grad dqkv is WRITTEN (=), every element of it.
void attention_backward(const Tensor& dout,  // (B, T, C) qkv's dtype
                        const Tensor& qkv,   // (B, T, 3*C) f32 or bf16, forward's input
                        const Tensor& out,   // (B, T, C) qkv's dtype, forward's output
                        const Tensor& lse,   // (B, H, T) f32, forward's lse
                        const Tensor& dqkv,  // (B, T, 3*C) qkv's dtype, written
                        int n_heads, bool causal, const AttentionDropout& dropout = {});

}  // namespace tessera::ops
