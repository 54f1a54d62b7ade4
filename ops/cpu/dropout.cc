#include "ops/cpu/dropout.h"

#include <algorithm>

#include "core/philox.h"
#include "ops/cpu/parallel.h"

namespace tessera::ops::cpu {

void keyed_dropout(const float* x, float* out, int64_t rows, int64_t n, float p, float path_p,
                   const DropoutKey& key) {
  const int64_t blocks = (n + 3) / 4;
  const float scale = 1.0f / (1.0f - p), path_scale = 1.0f / (1.0f - path_p);
  parallel_chunks(rows, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(n, 1)),
                  [&](int64_t r0, int64_t r1) {
                    for (int64_t b = r0; b < r1; ++b) {
                      const uint64_t pos = uint64_t(key.first + b);
                      const float* xr = x + b * n;
                      float* o = out + b * n;
                      float row = path_scale;
                      if (path_p > 0) {
                        const Philox4x32 r =
                            philox_block(key.seed, key.stream ^ kDropPathStream, pos);
                        if (philox_uniform(r.v[0]) < path_p) row = 0;
                      }
                      if (p == 0) {
                        for (int64_t j = 0; j < n; ++j) o[j] = xr[j] * row;
                        continue;
                      }
                      for (int64_t k = 0; k < blocks; ++k) {
                        const Philox4x32 r = philox_block(key.seed, key.stream, pos * blocks + k);
                        for (int l = 0; l < 4 && 4 * k + l < n; ++l) {
                          const int64_t j = 4 * k + l;
                          o[j] = philox_uniform(r.v[l]) >= p ? xr[j] * scale * row : 0.0f;
                        }
                      }
                    }
                  });
}

}  // namespace tessera::ops::cpu
