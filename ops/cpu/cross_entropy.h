#pragma once
// CPU launchers for ops/cross_entropy.h: raw pointers, n rows of v logits of which the first
// `valid` (<= v) take part in the softmax (the rest is vocabulary padding: ignored by forward,
// zero in dlogits). Both throw tessera::Error for a target outside [0, valid) that is not
// ignore_index.

#include <cstdint>

namespace tessera::ops::cpu {

void cross_entropy_forward(const float* logits, const int32_t* targets, float* loss, float* lse,
                           int64_t n, int64_t v, int64_t valid, int ignore_index);
// dlogits written.
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse,
                            float dloss, float* dlogits, int64_t n, int64_t v, int64_t valid,
                            int ignore_index);

}  // namespace tessera::ops::cpu
