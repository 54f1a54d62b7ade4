#pragma once
// Building blocks shared by the attention forward (attention.cc) and backward
// (attention_backward.cc) kernels: tile sizes, per-head packing, and the small GEMM.
//
// Why an own GEMM micro-kernel instead of dnnl_sgemm: measured single-threaded on this machine
// (AMD EPYC, AVX-512), a 64x64x64 product takes 5.3 us with dnnl_sgemm ('N','N', contiguous) and
// 5.4 us with tile_gemm below, 7.2 us with dnnl_sgemm ('N','T') on the strided K of qkv; but
// dnnl_sgemm's fixed cost per call is 0.35-0.7 us against 0.1 us here (16x16x16), which matters
// for D = 16, the ragged last tiles and the five products per tile pair of backward. So: packed
// operands plus an own register-blocked kernel. It is written with GCC vector extensions (no
// intrinsics), so each TESSERA_CPU_CLONES caller gets an AVX-512, AVX2 and baseline build of it.

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace tessera::ops::cpu::attn {

// Query rows and key columns per tile. 64x64 f32 tiles of S, P, dP, the q/k/v tile (D <= 64)
// and the output accumulator fit together in L2 (4 * 16 KiB).
inline constexpr int kTile = 64;

inline int64_t round16(int64_t n) {
  return (n + 15) / 16 * 16;
}

typedef float v16 __attribute__((vector_size(64)));

#define TESSERA_ATTN_INLINE inline __attribute__((always_inline))

// Rows [0, MR) of C (=|+=) A·B for NV 16-wide column vectors. A element (r, k) is A[r*lda + k],
// or A[k*lda + r] with kTransA; B is (K, 16*NV) row-major with stride ldb.
template <int NV, int MR, bool kTransA, bool kAccumulate>
TESSERA_ATTN_INLINE void gemm_block(int K, const float* A, int64_t lda, const float* B, int64_t ldb,
                                    float* C, int64_t ldc) {
  v16 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (kAccumulate) {
        std::memcpy(&acc[r][v], C + r * ldc + 16 * v, sizeof(v16));
      } else {
        acc[r][v] = v16{};
      }
    }
  }
  for (int k = 0; k < K; ++k) {
    v16 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) std::memcpy(&b[v], B + k * ldb + 16 * v, sizeof(v16));
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const float a = kTransA ? A[k * lda + r] : A[r * lda + k];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) std::memcpy(C + r * ldc + 16 * v, &acc[r][v], sizeof(v16));
  }
}

// All M rows for NV column vectors: blocks of MR rows (MR * NV accumulators + NV b vectors fit
// the 32 AVX-512 registers), then the remainder in smaller blocks.
template <int NV, bool kTransA, bool kAccumulate>
TESSERA_ATTN_INLINE void gemm_rows(int M, int K, const float* A, int64_t lda, const float* B,
                                   int64_t ldb, float* C, int64_t ldc) {
  constexpr int MR = NV == 4 ? 6 : NV == 3 ? 8 : NV == 2 ? 12 : 16;
  auto a_at = [&](int i) { return kTransA ? A + i : A + i * lda; };
  int i = 0;
  for (; i + MR <= M; i += MR)
    gemm_block<NV, MR, kTransA, kAccumulate>(K, a_at(i), lda, B, ldb, C + i * ldc, ldc);
  for (; i + 4 <= M; i += 4)
    gemm_block<NV, 4, kTransA, kAccumulate>(K, a_at(i), lda, B, ldb, C + i * ldc, ldc);
  for (; i < M; ++i)
    gemm_block<NV, 1, kTransA, kAccumulate>(K, a_at(i), lda, B, ldb, C + i * ldc, ldc);
}

// C (M, N) (=|+=) op(A) (M, K) · B (K, N); N a multiple of 16. Every element of C is a sum over
// k in increasing order, whatever M and the blocking: results do not depend on tile shapes.
template <bool kTransA, bool kAccumulate>
TESSERA_ATTN_INLINE void tile_gemm(int M, int N, int K, const float* A, int64_t lda, const float* B,
                                   int64_t ldb, float* C, int64_t ldc) {
  for (int n0 = 0; n0 < N; n0 += 64) {
    const float* b = B + n0;
    float* c = C + n0;
    switch (std::min(4, (N - n0) / 16)) {
      case 4:
        gemm_rows<4, kTransA, kAccumulate>(M, K, A, lda, b, ldb, c, ldc);
        break;
      case 3:
        gemm_rows<3, kTransA, kAccumulate>(M, K, A, lda, b, ldb, c, ldc);
        break;
      case 2:
        gemm_rows<2, kTransA, kAccumulate>(M, K, A, lda, b, ldb, c, ldc);
        break;
      default:
        gemm_rows<1, kTransA, kAccumulate>(M, K, A, lda, b, ldb, c, ldc);
        break;
    }
  }
}

// Geometry of one call: qkv rows have stride 3C; head h's q, k, v start at columns h*D, C + h*D,
// 2C + h*D. Packed rows are Dp = round16(D) wide; transposed packs have Tp = round16(T) columns.
// Padding is zero (buffers are zero-filled once and padding is never written).
struct Geometry {
  int64_t B, T, H, D, C, Dp, Tp, n_tiles;
  Geometry(int64_t b, int64_t t, int64_t h, int64_t d)
      : B(b),
        T(t),
        H(h),
        D(d),
        C(h * d),
        Dp(round16(d)),
        Tp(round16(t)),
        n_tiles((t + kTile - 1) / kTile) {}
  int64_t row_stride() const { return 3 * C; }
};

// dst (T, Dp) = scale * src rows (T, D) with stride ld.
TESSERA_ATTN_INLINE void pack_rows(const float* src, int64_t ld, int64_t T, int64_t D, int64_t Dp,
                                   float scale, float* dst) {
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t d = 0; d < D; ++d) dst[t * Dp + d] = scale * src[t * ld + d];
  }
}

// dst (D, Tp) = transpose of src rows (T, D) with stride ld.
TESSERA_ATTN_INLINE void pack_transposed(const float* src, int64_t ld, int64_t T, int64_t D,
                                         int64_t Tp, float* dst) {
  for (int64_t t0 = 0; t0 < T; t0 += 16) {
    const int64_t t1 = std::min(T, t0 + 16);
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t t = t0; t < t1; ++t) dst[d * Tp + t] = src[t * ld + d];
    }
  }
}

}  // namespace tessera::ops::cpu::attn
