#pragma once
// CPU launchers for ops/cross_entropy.h: raw pointers, n rows of v logits of which the first
// `valid` (<= v) take part in the softmax (the rest is vocabulary padding: ignored by forward,
// zero in dlogits). Both throw tessera::Error for a target (or a kept row's mix target) outside
// [0, valid) that is not ignore_index.

#include <cstdint>

namespace tessera::ops::cpu {

// ops/cross_entropy.h's SoftTargets as raw pointers (mix_targets and weights null: no mixing).
struct SoftTargetPtrs {
  float smoothing = 0;
  const int32_t* mix_targets = nullptr;
  const float* weights = nullptr;
};

void cross_entropy_forward(const float* logits, const int32_t* targets, float* loss, float* lse,
                           int64_t n, int64_t v, int64_t valid, int ignore_index,
                           const SoftTargetPtrs& soft = {});
// dlogits written.
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse,
                            float dloss, float* dlogits, int64_t n, int64_t v, int64_t valid,
                            int ignore_index, const SoftTargetPtrs& soft = {});

}  // namespace tessera::ops::cpu
