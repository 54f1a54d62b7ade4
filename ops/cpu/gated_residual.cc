// Own kernels, shaped like ops/cpu/modulate.cc: the forward is a broadcast FMA, and the
// backward's dh and sum-over-T dgate are fused into one pass over dy and h.
#include "ops/cpu/gated_residual.h"

#include <algorithm>

#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

// Columns per backward work item: its dgate partial sums (1 KiB) stay in L1.
constexpr int64_t kCols = 256;

TESSERA_CPU_KERNEL(void, forward_rows,
                   (const float* x, const float* gate, const float* h, float* y, int64_t r0,
                    int64_t r1, int64_t t, int64_t c),
                   (x, gate, h, y, r0, r1, t, c)) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* g = gate + (r / t) * c;
    const float* xr = x + r * c;
    const float* hr = h + r * c;
    float* yr = y + r * c;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) yr[j] = xr[j] + g[j] * hr[j];
  }
}

// One sample's columns [c0, c0 + len): dh, and dgate summed over t in order. Reads dy before
// writing dh at the same index, so dh may alias dy.
TESSERA_CPU_KERNEL(void, backward_block,
                   (const float* dy, const float* gate, const float* h, float* dgate, float* dh,
                    int64_t t, int64_t c, int64_t len),
                   (dy, gate, h, dgate, dh, t, c, len)) {
  float dg[kCols] = {};
  for (int64_t k = 0; k < t; ++k) {
    const float* dyr = dy + k * c;
    const float* hr = h + k * c;
    float* dhr = dh + k * c;
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) {
      const float d = dyr[j];
      dg[j] += d * hr[j];
      dhr[j] = gate[j] * d;
    }
  }
  for (int64_t j = 0; j < len; ++j) dgate[j] = dg[j];
}

}  // namespace

void gated_residual_forward(const float* x, const float* gate, const float* h, float* y, int64_t b,
                            int64_t t, int64_t c) {
  if (c == 0 || t == 0) return;
  parallel_chunks(b * t, std::max<int64_t>(1, kElementwiseGrain / c),
                  [&](int64_t r0, int64_t r1) { forward_rows(x, gate, h, y, r0, r1, t, c); });
}

void gated_residual_backward(const float* dy, const float* gate, const float* h, float* dgate,
                             float* dh, int64_t b, int64_t t, int64_t c) {
  if (c == 0) return;
  // Work items are (sample, column block); each owns its dgate entries.
  const int64_t blocks = (c + kCols - 1) / kCols;
  const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, t * kCols));
  parallel_chunks(b * blocks, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t s = i / blocks, c0 = (i % blocks) * kCols, len = std::min(kCols, c - c0);
      const int64_t off = s * t * c + c0;
      backward_block(dy + off, gate + s * c + c0, h + off, dgate + s * c + c0, dh + off, t, c, len);
    }
  });
}

}  // namespace tessera::ops::cpu
