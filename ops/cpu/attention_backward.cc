// Attention backward on the CPU, FlashAttention-2 style: scores are recomputed tile by tile from
// q, k and forward's lse (P = exp(S - lse)), with delta_i = rowsum(dO_i * O_i) and
// dS = P * (dP - delta) (with dropout: P m in place of P for dV, and m dP; tile_p_ds_dropout).
// Per (key tile j, query tile i) five small products:
//   S = q_i k_j^T, dV_j += P^T dO_i, dP = dO_i v_j^T, dK_j += dS^T q_i, dQ_i += dS k_j.
//
// Work split, deterministic for any thread count (every output element is summed by one thread
// in a fixed order, so dynamic scheduling only changes who computes it):
// - B*H >= threads: one (b, h) per task; key tiles in order, dQ accumulated in a per-head buffer.
// - B*H < threads (too few heads to share out): tasks (b, h, key tile) give dK, dV; then tasks
//   (b, h, query tile) recompute S and dP to give dQ (two extra products per tile pair, but all
//   threads busy). dQ sums over key tiles in the same order either way, so both splits give
//   bitwise the same dqkv.
#include <omp.h>

#include <cmath>
#include <vector>

#include "ops/cpu/attention.h"
#include "ops/cpu/attention_tile.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

using attn::Geometry;
using attn::kTile;

// Packed operands of one (b, h): O(T * D), never O(T^2).
struct HeadPack {
  explicit HeadPack(const Geometry& g, bool with_dq)
      : q(g.T * g.Dp),
        k(g.T * g.Dp),
        dout(g.T * g.Dp),
        kt(g.D * g.Tp),
        vt(g.D * g.Tp),
        lse(g.T),
        delta(g.T),
        dq(with_dq ? g.T * g.Dp : 0) {}
  std::vector<float> q;           // (T, Dp) q / sqrt(D)
  std::vector<float> k, dout;     // (T, Dp)
  std::vector<float> kt, vt;      // (D, Tp) k^T, v^T
  std::vector<float> lse, delta;  // (T) forward's lse; rowsum(dO * O)
  std::vector<float> dq;          // (T, Dp) dQ * sqrt(D) accumulator (one-head-per-task split)
};

// One thread's tile buffers.
struct TileScratch {
  explicit TileScratch(const Geometry& g)
      : p(kTile * kTile), ds(kTile * kTile), dk(kTile * g.Dp), dv(kTile * g.Dp) {}
  std::vector<float> p, ds;   // (kTile, kTile)
  std::vector<float> dk, dv;  // (kTile, Dp)
};

struct Args {
  const float *dout, *qkv, *out, *lse;
  float* dqkv;
  bool causal;
  AttentionDropout drop;
};

TESSERA_CPU_KERNEL(void, pack_head, (const Geometry& g, const Args& a, int64_t bh, HeadPack& hp),
                   (g, a, bh, hp)) {
  const int64_t b = bh / g.H, h = bh % g.H, ld = g.row_stride();
  const float* base = a.qkv + b * g.T * ld + h * g.D;
  attn::pack_rows(base, ld, g.T, g.D, g.Dp, 1.0f / std::sqrt(float(g.D)), hp.q.data());
  attn::pack_rows(base + g.C, ld, g.T, g.D, g.Dp, 1.0f, hp.k.data());
  attn::pack_transposed(base + g.C, ld, g.T, g.D, g.Tp, hp.kt.data());
  attn::pack_transposed(base + 2 * g.C, ld, g.T, g.D, g.Tp, hp.vt.data());
  const float* dout = a.dout + b * g.T * g.C + h * g.D;
  const float* out = a.out + b * g.T * g.C + h * g.D;
  attn::pack_rows(dout, g.C, g.T, g.D, g.Dp, 1.0f, hp.dout.data());
  for (int64_t t = 0; t < g.T; ++t) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t d = 0; d < g.D; ++d) sum += dout[t * g.C + d] * out[t * g.C + d];
    hp.delta[t] = sum;
    hp.lse[t] = a.lse[bh * g.T + t];
  }
}

// P and dS of query rows [q0, q0 + nq) against keys [k0, k0 + nk), into w.p and w.ds (stride
// kTile, ncp = round16(nk) columns; masked and padding columns are 0).
// With dropout (ops/attention_dropout.h; m = the factors of these rows and keys), w.p holds the
// dropped P m (what multiplied v in forward: dV = (P m)^T dO) and dS = P (m dO v^T - delta).
void tile_p_ds_dropout(const Geometry& g, const HeadPack& hp, TileScratch& w, const Args& a,
                       int64_t bh, int64_t q0, int nq, int64_t k0, int nk, int ncp) {
  const int64_t b = bh / g.H, h = bh % g.H;
  float factor[kTile];
  for (int r = 0; r < nq; ++r) {
    float* p = w.p.data() + r * kTile;
    float* ds = w.ds.data() + r * kTile;
    const int lim = a.causal ? static_cast<int>(std::min<int64_t>(nk, q0 + r - k0 + 1)) : nk;
    for (int c = 0; c < ncp; c += 4) {
      if (c >= lim) {
        for (int l = 0; l < 4; ++l) factor[c + l] = 0.0f;
        continue;
      }
      const Philox4x32 block = philox_block(
          a.drop.seed, a.drop.stream, attention_dropout_block(a.drop, b, h, g.T, q0 + r, k0 + c));
      for (int l = 0; l < 4; ++l) {
        factor[c + l] = c + l < lim ? attention_dropout_factor(a.drop, block, k0 + c + l) : 0.0f;
      }
    }
    const float lse = hp.lse[q0 + r], delta = hp.delta[q0 + r];
    for (int c = 0; c < ncp; ++c) {
      const float pc = c < lim ? fast_exp(p[c] - lse) : 0.0f;
      p[c] = pc * factor[c];
      ds[c] = pc * (ds[c] * factor[c] - delta);
    }
  }
}

template <CpuIsa kIsa>
TESSERA_ATTN_INLINE void tile_p_ds(const Geometry& g, const HeadPack& hp, TileScratch& w,
                                   const Args& a, int64_t bh, int64_t q0, int nq, int64_t k0,
                                   int nk, int ncp) {
  const bool causal = a.causal;
  attn::tile_gemm<kIsa, false, false>(nq, ncp, g.D, hp.q.data() + q0 * g.Dp, g.Dp,
                                      hp.kt.data() + k0, g.Tp, w.p.data(), kTile);  // S = q k^T
  attn::tile_gemm<kIsa, false, false>(nq, ncp, g.D, hp.dout.data() + q0 * g.Dp, g.Dp,
                                      hp.vt.data() + k0, g.Tp, w.ds.data(), kTile);  // dP = dO v^T
  if (a.drop.active()) {
    tile_p_ds_dropout(g, hp, w, a, bh, q0, nq, k0, nk, ncp);
    return;
  }
  for (int r = 0; r < nq; ++r) {
    float* p = w.p.data() + r * kTile;
    float* ds = w.ds.data() + r * kTile;
    const int lim = causal ? static_cast<int>(std::min<int64_t>(nk, q0 + r - k0 + 1)) : nk;
    const float lse = hp.lse[q0 + r], delta = hp.delta[q0 + r];
#pragma omp simd
    for (int c = 0; c < ncp; ++c) {
      const float pc = c < lim ? fast_exp(p[c] - lse) : 0.0f;
      p[c] = pc;
      ds[c] = pc * (ds[c] - delta);
    }
  }
}

// dK and dV of key tile j (written to dqkv); with dq, also dQ += dS k into the head's buffer.
TESSERA_CPU_KERNEL(void, key_tile,
                   (const Geometry& g, const Args& a, int64_t bh, int64_t j, HeadPack& hp,
                    TileScratch& w, bool with_dq),
                   (g, a, bh, j, hp, w, with_dq)) {
  const int64_t k0 = j * kTile;
  const int nk = static_cast<int>(std::min<int64_t>(kTile, g.T - k0));
  const int ncp = static_cast<int>(attn::round16(nk));
  std::fill(w.dk.begin(), w.dk.end(), 0.0f);
  std::fill(w.dv.begin(), w.dv.end(), 0.0f);
  // Causal: query tiles before the diagonal one see none of these keys.
  for (int64_t i = a.causal ? j : 0; i < g.n_tiles; ++i) {
    const int64_t q0 = i * kTile;
    const int nq = static_cast<int>(std::min<int64_t>(kTile, g.T - q0));
    tile_p_ds<kIsa>(g, hp, w, a, bh, q0, nq, k0, nk, ncp);
    attn::tile_gemm<kIsa, true, true>(nk, g.Dp, nq, w.p.data(), kTile, hp.dout.data() + q0 * g.Dp,
                                      g.Dp, w.dv.data(), g.Dp);  // dV += P^T dO
    attn::tile_gemm<kIsa, true, true>(nk, g.Dp, nq, w.ds.data(), kTile, hp.q.data() + q0 * g.Dp,
                                      g.Dp, w.dk.data(), g.Dp);  // dK += dS^T (q / sqrt(D))
    if (with_dq) {
      attn::tile_gemm<kIsa, false, true>(nq, g.Dp, nk, w.ds.data(), kTile, hp.k.data() + k0 * g.Dp,
                                         g.Dp, hp.dq.data() + q0 * g.Dp, g.Dp);  // dQ += dS k
    }
  }
  const int64_t b = bh / g.H, h = bh % g.H, ld = g.row_stride();
  float* dst = a.dqkv + (b * g.T + k0) * ld + h * g.D;
  for (int r = 0; r < nk; ++r) {
    for (int64_t d = 0; d < g.D; ++d) {
      dst[r * ld + g.C + d] = w.dk[r * g.Dp + d];
      dst[r * ld + 2 * g.C + d] = w.dv[r * g.Dp + d];
    }
  }
}

// dQ rows [q0, q0 + nq) = dq_acc / sqrt(D) into dqkv (dq_acc has stride Dp).
void write_dq(const Geometry& g, const Args& a, int64_t bh, int64_t q0, int nq,
              const float* dq_acc) {
  const int64_t b = bh / g.H, h = bh % g.H, ld = g.row_stride();
  const float scale = 1.0f / std::sqrt(float(g.D));
  float* dst = a.dqkv + (b * g.T + q0) * ld + h * g.D;
  for (int r = 0; r < nq; ++r) {
    for (int64_t d = 0; d < g.D; ++d) dst[r * ld + d] = scale * dq_acc[r * g.Dp + d];
  }
}

// dQ of query tile i alone (the few-heads split).
TESSERA_CPU_KERNEL(void, query_tile,
                   (const Geometry& g, const Args& a, int64_t bh, int64_t i, const HeadPack& hp,
                    TileScratch& w),
                   (g, a, bh, i, hp, w)) {
  const int64_t q0 = i * kTile;
  const int nq = static_cast<int>(std::min<int64_t>(kTile, g.T - q0));
  float* dq = w.dk.data();  // (kTile, Dp) free in this pass
  std::fill(w.dk.begin(), w.dk.end(), 0.0f);
  for (int64_t j = 0; j <= (a.causal ? i : g.n_tiles - 1); ++j) {
    const int64_t k0 = j * kTile;
    const int nk = static_cast<int>(std::min<int64_t>(kTile, g.T - k0));
    tile_p_ds<kIsa>(g, hp, w, a, bh, q0, nq, k0, nk, static_cast<int>(attn::round16(nk)));
    attn::tile_gemm<kIsa, false, true>(nq, g.Dp, nk, w.ds.data(), kTile, hp.k.data() + k0 * g.Dp,
                                       g.Dp, dq, g.Dp);  // dQ += dS k
  }
  write_dq(g, a, bh, q0, nq, dq);
}

}  // namespace

void attention_backward(const float* dout, const float* qkv, const float* out, const float* lse,
                        float* dqkv, int64_t B, int64_t T, int64_t H, int64_t D, bool causal,
                        const AttentionDropout& drop) {
  const Geometry g(B, T, H, D);
  const Args a{dout, qkv, out, lse, dqkv, causal, drop};
  const int64_t heads = B * H;
  if (heads == 0 || T == 0) return;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (heads >= threads) {
#pragma omp parallel num_threads(threads)
    {
      HeadPack hp(g, /*with_dq=*/true);
      TileScratch w(g);
#pragma omp for schedule(dynamic, 1)
      for (int64_t bh = 0; bh < heads; ++bh) {
        pack_head(g, a, bh, hp);
        std::fill(hp.dq.begin(), hp.dq.end(), 0.0f);
        for (int64_t j = 0; j < g.n_tiles; ++j) key_tile(g, a, bh, j, hp, w, /*with_dq=*/true);
        write_dq(g, a, bh, 0, static_cast<int>(g.T), hp.dq.data());
      }
    }
    return;
  }
  std::vector<HeadPack> packs;
  for (int64_t bh = 0; bh < heads; ++bh) packs.emplace_back(g, /*with_dq=*/false);
  const int64_t tiles = heads * g.n_tiles;
#pragma omp parallel num_threads(threads)
  {
    TileScratch w(g);
#pragma omp for schedule(static, 1)
    for (int64_t bh = 0; bh < heads; ++bh) pack_head(g, a, bh, packs[bh]);
      // Causal: early key tiles and late query tiles carry the most work; they go first.
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < tiles; ++it) {
      const int64_t bh = it / g.n_tiles;
      key_tile(g, a, bh, it % g.n_tiles, packs[bh], w, /*with_dq=*/false);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < tiles; ++it) {
      const int64_t bh = it / g.n_tiles;
      query_tile(g, a, bh, g.n_tiles - 1 - it % g.n_tiles, packs[bh], w);
    }
  }
}

}  // namespace tessera::ops::cpu
