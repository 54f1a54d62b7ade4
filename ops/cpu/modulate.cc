// Own kernels: oneDNN's binary primitive could do the forward broadcast, but the backward's fused
// dx / sum-over-T reductions have no primitive, and one fused pass reads dy and x once.
#include "ops/cpu/modulate.h"

#include <algorithm>

#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

// Columns per backward work item: its dshift/dscale partial sums (2 KiB) stay in L1.
constexpr int64_t kCols = 256;

TESSERA_CPU_KERNEL(void, forward_rows,
                   (const float* x, const float* shift, const float* scale, float* y, int64_t r0,
                    int64_t r1, int64_t t, int64_t c),
                   (x, shift, scale, y, r0, r1, t, c)) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* sh = shift + (r / t) * c;
    const float* sc = scale + (r / t) * c;
    const float* xr = x + r * c;
    float* yr = y + r * c;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) yr[j] = xr[j] * (1.0f + sc[j]) + sh[j];
  }
}

// One sample's columns [c0, c0 + len): dx, and dshift/dscale summed over t in order.
TESSERA_CPU_KERNEL(void, backward_block,
                   (const float* dy, const float* x, const float* scale, float* dx, float* dshift,
                    float* dscale, int64_t t, int64_t c, int64_t len),
                   (dy, x, scale, dx, dshift, dscale, t, c, len)) {
  float ds[kCols] = {}, dsc[kCols] = {};
  for (int64_t k = 0; k < t; ++k) {
    const float* dyr = dy + k * c;
    const float* xr = x + k * c;
    float* dxr = dx + k * c;
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) {
      dxr[j] = dyr[j] * (1.0f + scale[j]);
      ds[j] += dyr[j];
      dsc[j] += dyr[j] * xr[j];
    }
  }
  for (int64_t j = 0; j < len; ++j) {
    dshift[j] = ds[j];
    dscale[j] = dsc[j];
  }
}

}  // namespace

void modulate_forward(const float* x, const float* shift, const float* scale, float* y, int64_t b,
                      int64_t t, int64_t c) {
  if (c == 0 || t == 0) return;
  parallel_chunks(b * t, std::max<int64_t>(1, kElementwiseGrain / c),
                  [&](int64_t r0, int64_t r1) { forward_rows(x, shift, scale, y, r0, r1, t, c); });
}

void modulate_backward(const float* dy, const float* x, const float* scale, float* dx,
                       float* dshift, float* dscale, int64_t b, int64_t t, int64_t c) {
  if (c == 0) return;
  // Work items are (sample, column block); each owns its dshift/dscale entries.
  const int64_t blocks = (c + kCols - 1) / kCols;
  const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, t * kCols));
  parallel_chunks(b * blocks, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t s = i / blocks, c0 = (i % blocks) * kCols, len = std::min(kCols, c - c0);
      const int64_t off = s * t * c + c0;
      backward_block(dy + off, x + off, scale + s * c + c0, dx + off, dshift + s * c + c0,
                     dscale + s * c + c0, t, c, len);
    }
  });
}

}  // namespace tessera::ops::cpu
