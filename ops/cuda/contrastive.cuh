#pragma once
// CUDA launchers for ops/contrastive.h: raw device pointers. x/y/dy/dx (n, e), norm (n);
// logits/dlogits (bi, bt); offset: the positive pair of row i is column offset + i (negative:
// no positives).

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

void l2_normalize_forward(const float* x, float* y, float* norm, int64_t n, int64_t e, float eps,
                          cudaStream_t stream);
void l2_normalize_backward(const float* dy, const float* y, const float* norm, float* dx, int64_t n,
                           int64_t e, float eps, cudaStream_t stream);
// loss[0] = mean over rows of sum_j softplus(-z_ij (logits_ij + bias)); `rows` is scratch of bi
// doubles (row sums, added in row order by a second kernel: deterministic).
void sigmoid_pair_loss_forward(const float* logits, int64_t bi, int64_t bt, float bias,
                               int64_t offset, double* rows, float* loss, cudaStream_t stream);
void sigmoid_pair_loss_backward(const float* logits, int64_t bi, int64_t bt, float bias,
                                int64_t offset, float dloss, float* dlogits, cudaStream_t stream);

}  // namespace tessera::ops::cuda
