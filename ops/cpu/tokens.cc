#include "ops/cpu/tokens.h"

#include <cstring>

#include "ops/cpu/parallel.h"

namespace tessera::ops::cpu {

void copy_tokens(const void* src, int64_t ts, int64_t src_begin, void* dst, int64_t td,
                 int64_t dst_begin, int64_t B, int64_t count, int64_t C, size_t elem) {
  parallel_chunks(B, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, count * C)),
                  [&](int64_t b0, int64_t b1) {
                    for (int64_t b = b0; b < b1; ++b) {
                      std::memmove(static_cast<char*>(dst) + (b * td + dst_begin) * C * elem,
                                   static_cast<const char*>(src) + (b * ts + src_begin) * C * elem,
                                   elem * count * C);
                    }
                  });
}

}  // namespace tessera::ops::cpu
