// f32 GEMM through oneDNN's dnnl_sgemm, plus the small memory-bound helpers of the matmul family
// (bias broadcast, bias-gradient column sums, f32 <-> bf16 conversion). bf16 GEMM is in
// matmul_bf16.cc.
//
// Why dnnl_sgemm and not OpenBLAS (libopenblas0-openmp is installed): measured on this machine
// (1 thread, 512..2048 cubes and the Linear shapes 2048x1152x384 etc. in all transposes) both
// run at the same ~100-110 GFLOP/s per core, OpenBLAS never clearly ahead, so one library.
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/error.h"
#include "dnnl.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/onednn_status.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

// Products with at most this many multiply-adds are "small": in a batch of at least one per
// thread, each thread runs whole products single-threaded, which beats threading every small
// sgemm (its fork/join and partitioning overhead dominate below this size).
constexpr int64_t kSmallGemmMacs = int64_t{1} << 24;  // e.g. 256^3, or 512 x 512 x 64

// One product; inside an OpenMP parallel region dnnl_sgemm runs single-threaded.
void sgemm_one(const GemmShape& s, float alpha, const float* a, const float* b, float beta,
               float* c) {
  const int64_t lda = s.trans_a ? s.m : s.k, ldb = s.trans_b ? s.k : s.n;
  dnnl_status_t st = dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k, alpha,
                                a, lda, b, ldb, beta, c, s.n);
  // Out of memory (its packing buffers) says so, with the shapes: onednn_status.h.
  if (st != dnnl_success) [[unlikely]]
    throw_onednn_error(st, "dnnl_sgemm", gemm_description(s, "f32"));
}

TESSERA_CPU_KERNEL(void, scale_kernel, (float* c, float beta, int64_t n), (c, beta, n)) {
  if (beta == 0.0f) {
    std::fill(c, c + n, 0.0f);  // beta = 0 ignores old contents, NaNs included
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) c[i] *= beta;
}

// Column sums of a tile at most kColumnTile wide, accumulated in a local buffer so that out gets
// one rounded addition per column.
constexpr int64_t kColumnTile = 256;

inline __attribute__((always_inline)) float load_f32(float v) {
  return v;
}
inline __attribute__((always_inline)) float load_f32(bf16 v) {
  return std::bit_cast<float>(uint32_t(v.bits) << 16);
}

template <typename T>
inline __attribute__((always_inline)) void column_sums_body(const T* x, int64_t rows, int64_t ld,
                                                            int64_t cols, float* out) {
  float acc[kColumnTile] = {};
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * ld;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) acc[j] += load_f32(row[j]);
  }
  for (int64_t j = 0; j < cols; ++j) out[j] += acc[j];
}

TESSERA_CPU_KERNEL(void, column_sums_f32,
                   (const float* x, int64_t rows, int64_t ld, int64_t cols, float* out),
                   (x, rows, ld, cols, out)) {
  column_sums_body(x, rows, ld, cols, out);
}
TESSERA_CPU_KERNEL(void, column_sums_bf16,
                   (const bf16* x, int64_t rows, int64_t ld, int64_t cols, float* out),
                   (x, rows, ld, cols, out)) {
  column_sums_body(x, rows, ld, cols, out);
}

template <typename T, typename Kernel>
void column_sums_tiled(const T* x, int64_t rows, int64_t cols, float* out, Kernel kernel) {
  const int64_t tiles = (cols + kColumnTile - 1) / kColumnTile;
  const int64_t grain =
      std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, rows * kColumnTile));
  parallel_chunks(tiles, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t j0 = t * kColumnTile, j1 = std::min(cols, j0 + kColumnTile);
      kernel(x + j0, rows, cols, j1 - j0, out + j0);
    }
  });
}

// Same rounding as core/bf16.h float_to_bf16, written branch-free so that it vectorises.
TESSERA_CPU_KERNEL(void, to_bf16_kernel, (const float* src, bf16* dst, int64_t n), (src, dst, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = std::bit_cast<uint32_t>(src[i]);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (u >> 16) | 0x40u;
    dst[i].bits = uint16_t((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
  }
}

TESSERA_CPU_KERNEL(void, to_f32_kernel, (const bf16* src, float* dst, int64_t n), (src, dst, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = std::bit_cast<float>(uint32_t(src[i].bits) << 16);
}

}  // namespace

void gemm_f32(const GemmShape& s, float alpha, const float* a, const float* b, float beta,
              float* c) {
  if (s.batch == 0 || s.m == 0 || s.n == 0) return;
  cpu_isa();  // a forced lower path (TESSERA_CPU_ISA) caps oneDNN before its first GEMM
  const int64_t size_c = s.m * s.n;
  if (s.k == 0) {  // empty sum: BLAS leaves beta * C; spelled out rather than trusting lda = 0
    parallel_chunks(s.batch * size_c, kElementwiseGrain,
                    [&](int64_t i0, int64_t i1) { scale_kernel(c + i0, beta, i1 - i0); });
    return;
  }
  const int64_t size_a = s.m * s.k, size_b = s.k * s.n;
  const int threads = omp_get_max_threads();
  if (s.batch > 1 && s.batch >= threads && threads > 1 && !omp_in_parallel() &&
      s.m * s.n * s.k <= kSmallGemmMacs) {
    // Static schedule: which thread computes which product depends only on the thread count.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < s.batch; ++i) {
      sgemm_one(s, alpha, a + i * size_a, b + i * size_b, beta, c + i * size_c);
    }
    return;
  }
  for (int64_t i = 0; i < s.batch; ++i) {
    sgemm_one(s, alpha, a + i * size_a, b + i * size_b, beta, c + i * size_c);
  }
}

void broadcast_rows(const float* bias, int64_t rows, int64_t cols, float* y) {
  const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, cols));
  parallel_chunks(rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::memcpy(y + r * cols, bias, cols * sizeof(float));
  });
}

void column_sums_add(const float* x, int64_t rows, int64_t cols, float* out) {
  column_sums_tiled(x, rows, cols, out, column_sums_f32);
}

void column_sums_add(const bf16* x, int64_t rows, int64_t cols, float* out) {
  column_sums_tiled(x, rows, cols, out, column_sums_bf16);
}

void convert(const float* src, bf16* dst, int64_t n) {
  parallel_chunks(n, kElementwiseGrain,
                  [&](int64_t i0, int64_t i1) { to_bf16_kernel(src + i0, dst + i0, i1 - i0); });
}

void convert(const bf16* src, float* dst, int64_t n) {
  parallel_chunks(n, kElementwiseGrain,
                  [&](int64_t i0, int64_t i1) { to_f32_kernel(src + i0, dst + i0, i1 - i0); });
}

}  // namespace tessera::ops::cpu
