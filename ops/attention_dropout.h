#pragma once
// Dropout on the attention probabilities (model.attention_dropout), drawn inside the fused
// attention kernels (ops/attention.h): the output of query i is sum_j P_ij m_ij v_j with
// P = softmax(q k^T / sqrt(D)) and m_ij = keep_ij / (1 - p) (PyTorch's
// scaled_dot_product_attention(dropout_p=p) given the same mask). The log-sum-exp kept for
// backward is that of the undropped scores; backward uses dV = (P m)^T dO and
// dS = P (m dO v^T - delta), delta = rowsum(dO O), which stays valid because O = (P m) v.
//
// keep_ij follows ops/dropout.h's keying: for sample row b (stream position first + b), global
// head g = head_offset + h of `heads`, the per-sample element n = (g T + i) Tq4 + j with
// Tq4 = 4 ceil(T / 4) (each query row starts a Philox block), value n % 4 of block
// (position (heads T Tq4 / 4) + n / 4) of the site's stream, kept when its uniform is >= p. So the
// mask depends on neither the thread count, the device, the rank holding the sample, nor the TP
// split of the heads, and recomputation redraws it. Header-only, host and device.

#include <cstdint>

#include "core/philox.h"

namespace tessera::ops {

struct AttentionDropout {
  float p = 0;              // 0: off (no mask is drawn: the kernels' plain path)
  uint64_t seed = 0;        // train.seed
  uint64_t stream = 0;      // the site's stream (models/layers/dropout.h: a hash of its name)
  int64_t first = 0;        // stream position of batch row 0
  int64_t head_offset = 0;  // global index of this call's head 0 (TP: tp_rank * local heads)
  int64_t heads = 0;        // heads of the whole layer over all TP ranks

  bool active() const { return p > 0; }
};

// Philox block holding keep(b, h, i, j .. j+3) for j a multiple of 4, T the sequence length.
TESSERA_HOST_DEVICE uint64_t attention_dropout_block(const AttentionDropout& d, int64_t b,
                                                     int64_t h, int64_t T, int64_t i, int64_t j) {
  const int64_t blocks_per_row = (T + 3) / 4;
  return uint64_t((((d.first + b) * d.heads + d.head_offset + h) * T + i) * blocks_per_row + j / 4);
}

// The factor of probability (b, h, i, j): 1 / (1 - p) when kept, 0 when dropped. `block` is the
// Philox block of attention_dropout_block(d, b, h, T, i, j).
TESSERA_HOST_DEVICE float attention_dropout_factor(const AttentionDropout& d,
                                                   const Philox4x32& block, int64_t j) {
  return philox_uniform(block.v[j % 4]) >= d.p ? 1.0f / (1.0f - d.p) : 0.0f;
}

TESSERA_HOST_DEVICE float attention_dropout_factor(const AttentionDropout& d, int64_t b, int64_t h,
                                                   int64_t T, int64_t i, int64_t j) {
  return attention_dropout_factor(
      d, philox_block(d.seed, d.stream, attention_dropout_block(d, b, h, T, i, j)), j);
}

}  // namespace tessera::ops
