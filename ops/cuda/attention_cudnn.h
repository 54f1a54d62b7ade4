#pragma once
// cuDNN fused scaled-dot-product attention (flash attention) for ops/attention.h, through the
// cuDNN 9 backend graph API (ops/cuda/cudnn_graph.h). bf16 storage only (cuDNN's fused SDPA has
// no f32 path); the own kernel (ops/cuda/attention.cuh) is the fallback and the reference.
// Layouts are tessera's: qkv (B, T, 3*H*D) bf16 as [q | k | v], out (B, T, H*D) bf16,
// lse (B, H, T) f32 (cuDNN's softmax stats: max + log(sum exp) of the scaled scores).

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/bf16.h"

namespace tessera::ops::cuda {

// Empty when cuDNN's fused SDPA can take this shape on the current device; else why not
// (head dim, alignment, architecture, library version).
std::string cudnn_sdpa_unsupported(int64_t B, int64_t T, int64_t H, int64_t D);

// For tests, also on machines without a GPU: builds the forward and backward graphs of every
// variant tried for this shape and finalizes each operation graph without a handle (cuDNN then
// validates every descriptor and the graph, but chooses no engine). One line per variant:
// "<variant>: ok" or the cuDNN error.
std::vector<std::string> cudnn_sdpa_graph_report(int64_t B, int64_t T, int64_t H, int64_t D,
                                                 bool causal);

// `workspace(bytes)` returns device memory that stays valid for work queued on `stream`. Plans
// are built once per shape and cached. Throws tessera::Error naming the cuDNN failure.
using WorkspaceFn = std::function<void*(size_t)>;
void cudnn_sdpa_forward(const bf16* qkv, bf16* out, float* lse, int64_t B, int64_t T, int64_t H,
                        int64_t D, bool causal, const WorkspaceFn& workspace, cudaStream_t stream);

// dqkv (B, T, 3*H*D) bf16 written; lse: the forward's (cuDNN's or the own kernel's).
void cudnn_sdpa_backward(const bf16* dout, const bf16* qkv, const bf16* out, const float* lse,
                         bf16* dqkv, int64_t B, int64_t T, int64_t H, int64_t D, bool causal,
                         const WorkspaceFn& workspace, cudaStream_t stream);

}  // namespace tessera::ops::cuda
