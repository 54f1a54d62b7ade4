#pragma once
// CPU launchers for ops/attention.h on raw pointers. qkv (B, T, 3*H*D), out/dout (B, T, H*D),
// lse (B, H, T), dqkv (B, T, 3*H*D).

#include <cstdint>

#include "ops/attention_dropout.h"

namespace tessera::ops::cpu {

void attention_forward(const float* qkv, float* out, float* lse, int64_t B, int64_t T, int64_t H,
                       int64_t D, bool causal, const AttentionDropout& drop);
void attention_backward(const float* dout, const float* qkv, const float* out, const float* lse,
                        float* dqkv, int64_t B, int64_t T, int64_t H, int64_t D, bool causal,
                        const AttentionDropout& drop);

}  // namespace tessera::ops::cpu
