#pragma once
// Building blocks shared by the attention forward (attention.cc) and backward
// (attention_backward.cc) kernels: tile sizes, per-head packing, and the small GEMM.
//
// Why an own GEMM micro-kernel instead of dnnl_sgemm: measured single-threaded on an AMD EPYC
// with AVX-512, a 64x64x64 product takes 5.3 us with dnnl_sgemm ('N','N', contiguous) and 5.4 us
// with tile_gemm below, 7.2 us with dnnl_sgemm ('N','T') on the strided K of qkv; but
// dnnl_sgemm's fixed cost per call is 0.35-0.7 us against 0.1 us here (16x16x16), which matters
// for D = 16, the ragged last tiles and the five products per tile pair of backward. So: packed
// operands plus an own register-blocked kernel, written with GCC vector extensions (no
// intrinsics) and instantiated per instruction-set path (simd.h): the accumulator block is sized
// to the path's registers. A block of AVX-512's shape on AVX2 (6 x 4 vectors of 16 floats = 48
// ymm registers of 16) spilled to the stack on every multiply-add; that made attention the
// largest share of an AVX2 training step.

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ops/cpu/simd.h"

namespace tessera::ops::cpu::attn {

// Query rows and key columns per tile. 64x64 f32 tiles of S, P, dP, the q/k/v tile (D <= 64)
// and the output accumulator fit together in L2 (4 * 16 KiB).
inline constexpr int kTile = 64;

inline int64_t round16(int64_t n) {
  return (n + 15) / 16 * 16;
}

#define TESSERA_ATTN_INLINE inline __attribute__((always_inline))

template <int kLanes>
struct Vec;
template <>
struct Vec<16> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct Vec<8> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct Vec<4> {
  typedef float type __attribute__((vector_size(16)));
};

// Register blocking of one path: up to kMaxVectors vectors of kLanes columns, and for NV such
// vectors, rows(NV) rows at once, so that rows * NV accumulators + NV b vectors + one broadcast
// fit the register file (32 registers: 6x4, 8x3, 12x2, 16x1; 16 registers: 6x2, 12x1).
template <CpuIsa kIsa>
struct GemmBlocking {
  static constexpr int kLanes = SimdTraits<kIsa>::kLanes;
  static constexpr bool kWide = SimdTraits<kIsa>::kRegisters >= 32;
  static constexpr int kMaxVectors = kWide ? 4 : 2;
  static constexpr int rows(int nv) {
    return kWide ? (nv == 4 ? 6 : nv == 3 ? 8 : nv == 2 ? 12 : 16) : (nv == 2 ? 6 : 12);
  }
};

// Rows [0, MR) of C (=|+=) A·B for NV vectors of L columns. A element (r, k) is A[r*lda + k],
// or A[k*lda + r] with kTransA; B is (K, L*NV) row-major with stride ldb.
template <int L, int NV, int MR, bool kTransA, bool kAccumulate>
TESSERA_ATTN_INLINE void gemm_block(int K, const float* A, int64_t lda, const float* B, int64_t ldb,
                                    float* C, int64_t ldc) {
  using V = typename Vec<L>::type;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (kAccumulate) {
        std::memcpy(&acc[r][v], C + r * ldc + L * v, sizeof(V));
      } else {
        acc[r][v] = V{};
      }
    }
  }
  for (int k = 0; k < K; ++k) {
    V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) std::memcpy(&b[v], B + k * ldb + L * v, sizeof(V));
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
    for (int v = 0; v < NV; ++v) std::memcpy(C + r * ldc + L * v, &acc[r][v], sizeof(V));
  }
}

// All M rows for NV column vectors: blocks of the path's row count, then 4-row and 1-row blocks.
template <CpuIsa kIsa, int NV, bool kTransA, bool kAccumulate>
TESSERA_ATTN_INLINE void gemm_rows(int M, int K, const float* A, int64_t lda, const float* B,
                                   int64_t ldb, float* C, int64_t ldc) {
  using Blocking = GemmBlocking<kIsa>;
  constexpr int L = Blocking::kLanes, MR = Blocking::rows(NV);
  auto a_at = [&](int i) { return kTransA ? A + i : A + i * lda; };
  int i = 0;
  for (; i + MR <= M; i += MR)
    gemm_block<L, NV, MR, kTransA, kAccumulate>(K, a_at(i), lda, B, ldb, C + i * ldc, ldc);
  for (; i + 4 <= M; i += 4)
    gemm_block<L, NV, 4, kTransA, kAccumulate>(K, a_at(i), lda, B, ldb, C + i * ldc, ldc);
  for (; i < M; ++i)
    gemm_block<L, NV, 1, kTransA, kAccumulate>(K, a_at(i), lda, B, ldb, C + i * ldc, ldc);
}

// C (M, N) (=|+=) op(A) (M, K) · B (K, N); N a multiple of 16. Every element of C is a sum over
// k in increasing order, whatever M, the blocking and the path: results do not depend on tile
// shapes (the paths differ only where the compiler contracts a*b+c into one FMA).
template <CpuIsa kIsa, bool kTransA, bool kAccumulate>
TESSERA_ATTN_INLINE void tile_gemm(int M, int N, int K, const float* A, int64_t lda, const float* B,
                                   int64_t ldb, float* C, int64_t ldc) {
  using Blocking = GemmBlocking<kIsa>;
  constexpr int L = Blocking::kLanes, W = L * Blocking::kMaxVectors;
  for (int n0 = 0; n0 < N; n0 += W) {
    const float* b = B + n0;
    float* c = C + n0;
    const int nv = std::min(Blocking::kMaxVectors, (N - n0) / L);
    if constexpr (Blocking::kMaxVectors == 4) {
      if (nv == 4) {
        gemm_rows<kIsa, 4, kTransA, kAccumulate>(M, K, A, lda, b, ldb, c, ldc);
        continue;
      }
      if (nv == 3) {
        gemm_rows<kIsa, 3, kTransA, kAccumulate>(M, K, A, lda, b, ldb, c, ldc);
        continue;
      }
    }
    if (nv == 2) {
      gemm_rows<kIsa, 2, kTransA, kAccumulate>(M, K, A, lda, b, ldb, c, ldc);
    } else {
      gemm_rows<kIsa, 1, kTransA, kAccumulate>(M, K, A, lda, b, ldb, c, ldc);
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
