// Attention forward on the CPU, flash-attention style: per (b, h, query tile of 64 rows) walk
// the key tiles with an online softmax (running row max m, running sum l, rescaled output
// accumulator), so memory stays one tile of scores per thread whatever T is. Backward is in
// attention_backward.cc; the shared GEMM and packing in attention_tile.h.
#include "ops/cpu/attention.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "ops/cpu/attention_tile.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

using attn::Geometry;
using attn::kTile;

// One thread's buffers. k^T and v of the current head are packed once and reused for all of the
// head's query tiles that this thread takes.
struct ForwardScratch {
  explicit ForwardScratch(const Geometry& g)
      : kt(g.D * g.Tp),
        v(g.T * g.Dp),
        q(kTile * g.Dp),
        o(kTile * g.Dp),
        s(kTile * kTile),
        m(kTile),
        l(kTile) {}
  std::vector<float> kt, v, q, o, s, m, l;
  int64_t packed_bh = -1;
};

// Online-softmax update of score rows s (nq, ncp) against keys [k0, k0 + nk): masks padding and
// (causal) future keys, turns s into P = exp(s - m_new), rescales the accumulator rows o.
TESSERA_ATTN_INLINE void online_softmax(const Geometry& g, ForwardScratch& w, int64_t q0, int nq,
                                        int64_t k0, int nk, int ncp, bool causal) {
  for (int r = 0; r < nq; ++r) {
    float* row = w.s.data() + r * kTile;
    const int lim = causal ? static_cast<int>(std::min<int64_t>(nk, q0 + r - k0 + 1)) : nk;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int c = 0; c < ncp; ++c) {
      const float x = c < lim ? row[c] : -INFINITY;
      row[c] = x;
      mx = x > mx ? x : mx;
    }
    const float m_new = std::max(w.m[r], mx);     // finite: every row sees at least one key
    const float corr = fast_exp(w.m[r] - m_new);  // exp(-inf) = 0 on the first tile
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < ncp; ++c) {
      const float p = fast_exp(row[c] - m_new);
      row[c] = p;
      sum += p;
    }
    w.l[r] = w.l[r] * corr + sum;
    w.m[r] = m_new;
    if (corr != 1.0f) {
      float* o = w.o.data() + r * g.Dp;
#pragma omp simd
      for (int64_t d = 0; d < g.Dp; ++d) o[d] *= corr;
    }
  }
}

// P (nq rows of stride kTile) of query rows [q0, q0 + nq) against keys [k0, k0 + nk) times the
// dropout factors (ops/attention_dropout.h); k0 is a multiple of 4 (tiles of 64).
void drop_probabilities(const Geometry& g, const AttentionDropout& drop, int64_t b, int64_t h,
                        int64_t q0, int nq, int64_t k0, int nk, bool causal, float* s) {
  for (int r = 0; r < nq; ++r) {
    float* row = s + r * kTile;
    const int lim = causal ? static_cast<int>(std::min<int64_t>(nk, q0 + r - k0 + 1)) : nk;
    for (int c = 0; c < lim; c += 4) {
      const Philox4x32 block = philox_block(
          drop.seed, drop.stream, attention_dropout_block(drop, b, h, g.T, q0 + r, k0 + c));
      for (int l = 0; l < 4 && c + l < lim; ++l) {
        row[c + l] *= attention_dropout_factor(drop, block, k0 + c + l);
      }
    }
  }
}

TESSERA_CPU_KERNEL(void, forward_tile,
                   (const Geometry& g, const float* qkv, float* out, float* lse, int64_t bh,
                    int64_t qt, bool causal, const AttentionDropout& drop, ForwardScratch& w),
                   (g, qkv, out, lse, bh, qt, causal, drop, w)) {
  const int64_t b = bh / g.H, h = bh % g.H, ld = g.row_stride();
  const float* base = qkv + b * g.T * ld;
  if (w.packed_bh != bh) {
    attn::pack_transposed(base + g.C + h * g.D, ld, g.T, g.D, g.Tp, w.kt.data());
    attn::pack_rows(base + 2 * g.C + h * g.D, ld, g.T, g.D, g.Dp, 1.0f, w.v.data());
    w.packed_bh = bh;
  }
  const int64_t q0 = qt * kTile;
  const int nq = static_cast<int>(std::min<int64_t>(kTile, g.T - q0));
  // Scores are (q / sqrt(D)) · k: the scale goes into the packed q.
  attn::pack_rows(base + q0 * ld + h * g.D, ld, nq, g.D, g.Dp, 1.0f / std::sqrt(float(g.D)),
                  w.q.data());
  std::fill(w.m.begin(), w.m.end(), -INFINITY);
  std::fill(w.l.begin(), w.l.end(), 0.0f);
  std::fill(w.o.begin(), w.o.end(), 0.0f);
  // Causal: key tiles after the diagonal one are fully masked and skipped.
  const int64_t n_key_tiles = causal ? qt + 1 : g.n_tiles;
  for (int64_t j = 0; j < n_key_tiles; ++j) {
    const int64_t k0 = j * kTile;
    const int nk = static_cast<int>(std::min<int64_t>(kTile, g.T - k0));
    const int ncp = static_cast<int>(attn::round16(nk));
    attn::tile_gemm<kIsa, false, false>(nq, ncp, g.D, w.q.data(), g.Dp, w.kt.data() + k0, g.Tp,
                                        w.s.data(), kTile);  // S = q k^T
    online_softmax(g, w, q0, nq, k0, nk, ncp, causal);
    // Dropout after the softmax's sum: l (the normaliser) and lse stay those of every key.
    if (drop.active()) drop_probabilities(g, drop, b, h, q0, nq, k0, nk, causal, w.s.data());
    attn::tile_gemm<kIsa, false, true>(nq, g.Dp, nk, w.s.data(), kTile, w.v.data() + k0 * g.Dp,
                                       g.Dp, w.o.data(), g.Dp);  // O += P v
  }
  for (int r = 0; r < nq; ++r) {
    const float inv = 1.0f / w.l[r];
    float* dst = out + (b * g.T + q0 + r) * g.C + h * g.D;
    const float* o = w.o.data() + r * g.Dp;
    for (int64_t d = 0; d < g.D; ++d) dst[d] = o[d] * inv;
    lse[bh * g.T + q0 + r] = w.m[r] + std::log(w.l[r]);
  }
}

}  // namespace

void attention_forward(const float* qkv, float* out, float* lse, int64_t B, int64_t T, int64_t H,
                       int64_t D, bool causal, const AttentionDropout& drop) {
  const Geometry g(B, T, H, D);
  const int64_t items = B * H * g.n_tiles;
  if (items == 0) return;
  const int threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), items));
  // Each (b, h, query tile) is computed whole by one thread, so the result does not depend on
  // which thread takes it: dynamic scheduling balances the causal triangle and stays
  // deterministic. Heavy (late) causal query tiles go first.
#pragma omp parallel num_threads(threads)
  {
    ForwardScratch w(g);
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) {
      forward_tile(g, qkv, out, lse, it / g.n_tiles, g.n_tiles - 1 - it % g.n_tiles, causal, drop,
                   w);
    }
  }
}

}  // namespace tessera::ops::cpu
