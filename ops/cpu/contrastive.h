#pragma once
// CPU launchers for ops/contrastive.h.

#include <cstdint>

namespace tessera::ops::cpu {

void l2_normalize_forward(const float* x, float* y, float* norm, int64_t n, int64_t e, float eps);
void l2_normalize_backward(const float* dy, const float* y, const float* norm, float* dx, int64_t n,
                           int64_t e, float eps);
float sigmoid_pair_loss_forward(const float* logits, int64_t bi, int64_t bt, float bias,
                                int64_t offset);
void sigmoid_pair_loss_backward(const float* logits, int64_t bi, int64_t bt, float bias,
                                int64_t offset, float dloss, float* dlogits);

}  // namespace tessera::ops::cpu
