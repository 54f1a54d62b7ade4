#pragma once
// CUDA launchers for ops/attention.h (own tiled flash-style kernels; the fallback and reference
// for the cuDNN path). Raw device pointers: qkv (B, T, 3*H*D) as [q | k | v] each (H, D),
// out/dout (B, T, H*D), lse (B, H, T) f32, dqkv (B, T, 3*H*D). Storage is f32 or bf16 (uint16_t
// bits, round to nearest even); every accumulation is f32. D <= 128. `drop`: dropout on the
// probabilities (ops/attention_dropout.h; heads already resolved), off when p = 0.

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/attention_dropout.h"

namespace tessera::ops::cuda {

constexpr int64_t kAttentionMaxHeadDim = 128;

void attention_forward(const float* qkv, float* out, float* lse, int64_t B, int64_t T, int64_t H,
                       int64_t D, bool causal, const AttentionDropout& drop, cudaStream_t stream);
void attention_forward_bf16(const uint16_t* qkv, uint16_t* out, float* lse, int64_t B, int64_t T,
                            int64_t H, int64_t D, bool causal, const AttentionDropout& drop,
                            cudaStream_t stream);

// `delta` is scratch of B*H*T floats (rowsum(dout * out) per query).
void attention_backward(const float* dout, const float* qkv, const float* out, const float* lse,
                        float* dqkv, float* delta, int64_t B, int64_t T, int64_t H, int64_t D,
                        bool causal, const AttentionDropout& drop, cudaStream_t stream);
void attention_backward_bf16(const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                             const float* lse, uint16_t* dqkv, float* delta, int64_t B, int64_t T,
                             int64_t H, int64_t D, bool causal, const AttentionDropout& drop,
                             cudaStream_t stream);

}  // namespace tessera::ops::cuda
