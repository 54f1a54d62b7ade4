// Own kernels: a gather and a scatter-add of rows, which oneDNN has no primitive for.
#include "ops/cpu/embedding.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

// Columns per unit of the backward's split: one 64-byte cache line, so no two threads write the
// same line of dtable.
constexpr int64_t kColumnUnit = 16;

void check_ids(const char* op, const int32_t* ids, int64_t n, int64_t v) {
  for (int64_t i = 0; i < n; ++i) {
    TESSERA_CHECK(ids[i] >= 0 && ids[i] < v, op, ": id ", ids[i], " at position ", i,
                  " is outside [0, ", v, ")");
  }
}

// dtable[ids[i], c0:c1] += dout[i, c0:c1] for every i in order.
TESSERA_CPU_KERNEL(void, scatter_add_columns,
                   (const float* dout, const int32_t* ids, float* dtable, int64_t n, int64_t c,
                    int64_t c0, int64_t c1),
                   (dout, ids, dtable, n, c, c0, c1)) {
  for (int64_t i = 0; i < n; ++i) {
    const float* src = dout + i * c;
    float* dst = dtable + int64_t(ids[i]) * c;
#pragma omp simd
    for (int64_t j = c0; j < c1; ++j) dst[j] += src[j];
  }
}

}  // namespace

void embedding_forward(const int32_t* ids, const float* table, float* out, int64_t n, int64_t v,
                       int64_t c) {
  check_ids("embedding_forward", ids, n, v);
  if (c == 0) return;
  parallel_chunks(n, std::max<int64_t>(1, kElementwiseGrain / c), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      std::memcpy(out + i * c, table + int64_t(ids[i]) * c, size_t(c) * sizeof(float));
    }
  });
}

void embedding_backward(const float* dout, const int32_t* ids, float* dtable, int64_t n, int64_t v,
                        int64_t c) {
  check_ids("embedding_backward", ids, n, v);
  // Threads own column ranges, so each dtable element is updated by one thread, in position
  // order. The grain keeps small problems on one thread.
  const int64_t units = (c + kColumnUnit - 1) / kColumnUnit;
  const int64_t grain =
      std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, n * kColumnUnit));
  parallel_chunks(units, grain, [&](int64_t u0, int64_t u1) {
    scatter_add_columns(dout, ids, dtable, n, c, u0 * kColumnUnit, std::min(c, u1 * kColumnUnit));
  });
}

}  // namespace tessera::ops::cpu
