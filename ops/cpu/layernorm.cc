// Own fused kernels rather than oneDNN's layer_normalization primitive: oneDNN's backward
// writes diff_scale/diff_shift (no accumulate, so it would need a scratch buffer and an extra
// pass) and reduces them over rows in an order we do not control. For the forward, measured in
// bench/ops/layernorm_bench.cc (which keeps oneDNN's as a comparison, primitive built once):
// at (16384, 768) this kernel is faster (about 28 vs 20 GB/s, 2 threads); at (2048, 384), which
// sits in cache, oneDNN is faster with 2 threads (about 38 vs 26 GB/s) and equal with 1.
// One row (a few KiB) stays in L1 between the passes, so each kernel reads x once from memory.
#include "ops/cpu/layernorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

// Rows per partial sum of dweight/dbias. Fixed (not per thread) so that the summation order, and
// so the result, is the same for any thread count.
constexpr int64_t kChunkRows = 64;

// Row reductions keep 16 independent partial sums in an array that the compiler holds in one
// vector register: GCC's `omp simd reduction(+)` kept its partials in memory and ran the
// in-cache forward at about half this speed.
constexpr int kLanes = 16;

inline __attribute__((always_inline)) float lanes_total(const float* lanes) {
  float s = 0;
  for (int l = 0; l < kLanes; ++l) s += lanes[l];
  return s;
}

// sum_j (x_j - shift)^p for p = 1 (power == 1) or 2.
template <int power>
inline __attribute__((always_inline)) float row_sum(const float* x, int64_t c, float shift) {
  float lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= c; j += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const float d = x[j + l] - shift;
      lanes[l] += power == 1 ? d : d * d;
    }
  }
  float tail = 0;
  for (; j < c; ++j) tail += power == 1 ? x[j] - shift : (x[j] - shift) * (x[j] - shift);
  return lanes_total(lanes) + tail;
}

TESSERA_CPU_KERNEL(void, forward_rows,
                   (const float* x, const float* w, const float* b, float* y, float* mean,
                    float* rstd, int64_t r0, int64_t r1, int64_t c, float eps),
                   (x, w, b, y, mean, rstd, r0, r1, c, eps)) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * c;
    float* yr = y + r * c;
    const float m = row_sum<1>(xr, c, 0.0f) / float(c);
    // Two-pass variance (sum of squared deviations): no cancellation when |mean| >> std.
    const float rs = 1.0f / std::sqrt(row_sum<2>(xr, c, m) / float(c) + eps);
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) yr[j] = (xr[j] - m) * rs * w[j] + b[j];
    mean[r] = m;
    rstd[r] = rs;
  }
}

// Rows [r0, r1): writes dx and adds this range's dweight/dbias contributions into pw/pb.
TESSERA_CPU_KERNEL(void, backward_rows,
                   (const float* dy, const float* x, const float* w, const float* mean,
                    const float* rstd, float* dx, float* pw, float* pb, int64_t r0, int64_t r1,
                    int64_t c),
                   (dy, x, w, mean, rstd, dx, pw, pb, r0, r1, c)) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* dyr = dy + r * c;
    const float* xr = x + r * c;
    float* dxr = dx + r * c;
    const float m = mean[r], rs = rstd[r];
    float lg[kLanes] = {}, lgx[kLanes] = {};  // partial sums of dy*w and dy*w*xhat
    int64_t j = 0;
    for (; j + kLanes <= c; j += kLanes) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) {
        const float xh = (xr[j + l] - m) * rs;
        const float g = dyr[j + l] * w[j + l];
        lg[l] += g;
        lgx[l] += g * xh;
        pw[j + l] += dyr[j + l] * xh;
        pb[j + l] += dyr[j + l];
      }
    }
    float sg = 0, sgx = 0;
    for (; j < c; ++j) {
      const float xh = (xr[j] - m) * rs;
      const float g = dyr[j] * w[j];
      sg += g;
      sgx += g * xh;
      pw[j] += dyr[j] * xh;
      pb[j] += dyr[j];
    }
    const float a = (lanes_total(lg) + sg) / float(c), bb = (lanes_total(lgx) + sgx) / float(c);
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) {
      const float xh = (xr[j] - m) * rs;
      dxr[j] = rs * (dyr[j] * w[j] - a - xh * bb);
    }
  }
}

// dst[j] += sum over chunks k (in order) of partial[k * stride + j], for j in [j0, j1).
TESSERA_CPU_KERNEL(void, reduce_chunks,
                   (const float* partial, int64_t chunks, int64_t stride, float* dst, int64_t j0,
                    int64_t j1),
                   (partial, chunks, stride, dst, j0, j1)) {
  for (int64_t j = j0; j < j1; ++j) {
    float s = 0;
    for (int64_t k = 0; k < chunks; ++k) s += partial[k * stride + j];
    dst[j] += s;
  }
}

}  // namespace

void layernorm_forward(const float* x, const float* weight, const float* bias, float* y,
                       float* mean, float* rstd, int64_t n, int64_t c, float eps) {
  if (c == 0) return;
  const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / c);
  parallel_chunks(n, grain, [&](int64_t r0, int64_t r1) {
    forward_rows(x, weight, bias, y, mean, rstd, r0, r1, c, eps);
  });
}

void layernorm_backward(const float* dy, const float* x, const float* weight, const float* mean,
                        const float* rstd, float* dx, float* dweight, float* dbias, int64_t n,
                        int64_t c) {
  if (c == 0 || n == 0) return;
  const int64_t chunks = (n + kChunkRows - 1) / kChunkRows;
  // partial[k] = [dweight part (c) | dbias part (c)] of row chunk k.
  std::vector<float> partial(size_t(chunks) * 2 * c, 0.0f);
  parallel_chunks(chunks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      float* pw = partial.data() + k * 2 * c;
      backward_rows(dy, x, weight, mean, rstd, dx, pw, pw + c, k * kChunkRows,
                    std::min(n, (k + 1) * kChunkRows), c);
    }
  });
  // Columns of dweight and dbias as one range of 2c: [0, c) -> dweight, [c, 2c) -> dbias.
  parallel_chunks(2 * c, 256, [&](int64_t j0, int64_t j1) {
    if (j0 < c) reduce_chunks(partial.data(), chunks, 2 * c, dweight, j0, std::min(j1, c));
    if (j1 > c) {
      reduce_chunks(partial.data() + c, chunks, 2 * c, dbias, std::max(j0, c) - c, j1 - c);
    }
  });
}

}  // namespace tessera::ops::cpu
