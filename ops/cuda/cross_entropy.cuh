#pragma once
// CUDA launchers for ops/cross_entropy.h: raw device pointers, n rows of v logits of which the
// first `cols` are valid (the rest: vocabulary padding, skipped; zero in dlogits), the op's
// stream; mix_targets/weights null without mixing (ops/cross_entropy.h's SoftTargets). The
// targets (and mix targets) are range-checked, and the valid ones counted (n_valid), by the adapter
// on the host (ops/cross_entropy.cc), which reads them anyway to throw the same error as the CPU.

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

void cross_entropy_forward(const float* logits, const int32_t* targets, float* loss, float* lse,
                           int64_t n, int64_t v, int64_t cols, int ignore_index, int64_t n_valid,
                           const int32_t* mix_targets, const float* weights, float smoothing,
                           cudaStream_t stream);
// dlogits written.
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse,
                            float dloss, float* dlogits, int64_t n, int64_t v, int64_t cols,
                            int ignore_index, int64_t n_valid, const int32_t* mix_targets,
                            const float* weights, float smoothing, cudaStream_t stream);

}  // namespace tessera::ops::cuda
