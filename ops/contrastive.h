#pragma once
// Pieces of the image-text contrastive losses (CLIP, SigLIP) that existing ops do not cover:
// L2-normalising embedding rows, and SigLIP's pairwise sigmoid loss over a similarity matrix.
// (CLIP's softmax loss is cross_entropy on the same matrix.)
//
// The similarity matrix is (Bi, Bt): Bi rows of this rank's images against Bt texts, which may
// be gathered from every rank; row i's positive pair is column `offset + i` (offset = this
// rank's first global sample; 0 on one process). offset = kNoPositivePairs scores a block of
// negatives only (the off-diagonal blocks of the ring-passed SigLIP loss).
//
// Determinism: each row is reduced in double in column order and the row sums are added in row
// order, so results are bitwise equal for any thread count.

#include <cstdint>

#include "core/tensor.h"

namespace tessera::ops {

// An offset that no column index reaches: every pair of the block is negative (z = -1).
inline constexpr int64_t kNoPositivePairs = int64_t(1) << 60;

// y = x / max(||x||, eps) per row, as torch.nn.functional.normalize (eps = 1e-12). `norm`
// receives max(||x||, eps), for backward.
void l2_normalize_forward(const Tensor& x,      // (N, E) f32
                          const Tensor& y,      // (N, E) f32
                          const Tensor& norm);  // (N) f32

// Contract: dx is WRITTEN: dx = (dy - y * <y, dy>) / norm, or dy / eps for rows whose norm was
// clamped at eps. dx may alias dy.
void l2_normalize_backward(const Tensor& dy,    // (N, E)
                           const Tensor& y,     // (N, E), from forward
                           const Tensor& norm,  // (N), from forward
                           const Tensor& dx);   // (N, E)

// SigLIP: loss = 1/Bi * sum_ij softplus(-z_ij * (logits_ij + bias)), i.e.
// -1/Bi * sum_ij log sigmoid(z_ij (logits_ij + bias)), z_ij = +1 for j == offset + i, else -1.
// `logits` are the scaled similarities t * <x_i, y_j>; the bias is added here.
void sigmoid_pair_loss_forward(const Tensor& logits,  // (Bi, Bt) f32
                               float bias, int64_t offset,
                               const Tensor& loss);  // (1) f32

// Contract: dlogits is WRITTEN: dloss/Bi * -z_ij * sigmoid(-z_ij (logits_ij + bias)). The
// gradient of the bias is the sum of dlogits, of the scale t it is <dlogits, logits> / t.
void sigmoid_pair_loss_backward(const Tensor& logits,  // (Bi, Bt)
                                float bias, int64_t offset, float dloss,
                                const Tensor& dlogits);  // (Bi, Bt); may alias logits

}  // namespace tessera::ops
