// A permutation: one image row of one patch (p*c floats) is contiguous on both sides, so both
// directions are a memcpy per (image row, patch column). No oneDNN primitive does this layout
// change in one pass (a reorder would need a 6-D view with strides we cannot express as one
// memory descriptor on both sides without a copy).
#include "ops/cpu/patchify.h"

#include <algorithm>
#include <cstring>

#include "ops/cpu/parallel.h"

namespace tessera::ops::cpu {

void patchify(const float* images, const float* patches, int64_t b, int64_t h, int64_t w, int64_t c,
              int64_t p, bool to_patches) {
  const int64_t gw = w / p, seg = p * c, token = p * p * c;
  if (seg == 0) return;
  // Work items are image rows (sample, y): each copies gw segments of p*c floats.
  parallel_chunks(
      b * h, std::max<int64_t>(1, kElementwiseGrain / (w * c)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t s = r / h, y = r % h, i = y / p, py = y % p;
          float* img = const_cast<float*>(images) + r * w * c;
          float* pat = const_cast<float*>(patches) + (s * (h / p) * gw + i * gw) * token + py * seg;
          for (int64_t j = 0; j < gw; ++j) {
            if (to_patches) {
              std::memcpy(pat + j * token, img + j * seg, seg * sizeof(float));
            } else {
              std::memcpy(img + j * seg, pat + j * token, seg * sizeof(float));
            }
          }
        }
      });
}

}  // namespace tessera::ops::cpu
