#pragma once
// Scaled dot-product multi-head self-attention on the fused QKV projection, memory-efficient
// (flash-attention style): the (T, T) score matrix is never stored; backward recomputes it from
// q, k and the per-query log-sum-exp that forward keeps.
//
// Layout: qkv's last dim is [q | k | v], each C = n_heads * D wide and laid out as (H, D), as the
// fused QKV linear writes it. Scores are q·k / sqrt(D); with `causal`, query t sees keys <= t.

#include "core/tensor.h"

namespace tessera::ops {

void attention_forward(const Tensor& qkv,  // (B, T, 3*C) f32, C = n_heads * D
                       const Tensor& out,  // (B, T, C) f32, heads concatenated in (H, D) order
                       const Tensor& lse,  // (B, H, T) f32: log-sum-exp of each query's scores
                       int n_heads, bool causal);

// Contract: no parameters; the activation grad dqkv is WRITTEN (=), every element of it.
void attention_backward(const Tensor& dout,  // (B, T, C) f32
                        const Tensor& qkv,   // (B, T, 3*C) f32, forward's input
                        const Tensor& out,   // (B, T, C) f32, forward's output
                        const Tensor& lse,   // (B, H, T) f32, forward's lse
                        const Tensor& dqkv,  // (B, T, 3*C) f32, written
                        int n_heads, bool causal);

}  // namespace tessera::ops
