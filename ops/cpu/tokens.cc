#include "ops/cpu/tokens.h"

#include <cstring>

#include "ops/cpu/parallel.h"

namespace tessera::ops::cpu {

void patch_copy(float* images, float* patches, int64_t B, int64_t H, int64_t W, int64_t C,
                int64_t p, bool to_patches) {
  const int64_t gh = H / p, gw = W / p, row = p * C;  // one patch row (px, c) is contiguous
  // One work item per (b, patch row py of the grid, py within the patch): copies gw runs of
  // p*C floats. Items touch disjoint memory, so any split is race-free.
  const int64_t items = B * gh * p;
  parallel_chunks(items, std::max<int64_t>(1, kElementwiseGrain / (W * C)),
                  [&](int64_t i0, int64_t i1) {
                    for (int64_t it = i0; it < i1; ++it) {
                      const int64_t b = it / (gh * p), gy = (it / p) % gh, py = it % p;
                      float* img = images + ((b * H + gy * p + py) * W) * C;
                      for (int64_t gx = 0; gx < gw; ++gx) {
                        float* pat = patches + ((b * gh + gy) * gw + gx) * (p * row) + py * row;
                        float* im = img + gx * p * C;
                        if (to_patches)
                          std::memcpy(pat, im, sizeof(float) * row);
                        else
                          std::memcpy(im, pat, sizeof(float) * row);
                      }
                    }
                  });
}

void copy_tokens(const float* src, int64_t ts, int64_t src_begin, float* dst, int64_t td,
                 int64_t dst_begin, int64_t B, int64_t count, int64_t C) {
  parallel_chunks(B, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, count * C)),
                  [&](int64_t b0, int64_t b1) {
                    for (int64_t b = b0; b < b1; ++b) {
                      std::memmove(dst + (b * td + dst_begin) * C, src + (b * ts + src_begin) * C,
                                   sizeof(float) * count * C);
                    }
                  });
}

}  // namespace tessera::ops::cpu
