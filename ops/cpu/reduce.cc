// Hand written rather than oneDNN: oneDNN 2.6's reduction primitive has no f64 result on CPU,
// does not promise a summation order that is the same for every thread count (the deterministic
// mode and resume-on-other-thread-count both need that), and creating a primitive per call costs
// more than summing a small tensor.
#include "ops/cpu/reduce.h"

#include <algorithm>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

// Elements per partial sum. Fixed (not "one chunk per thread") so that the partial sums, and
// their in-order total, are the same for every thread count.
constexpr int64_t kChunk = 1 << 15;
// Independent double accumulators per chunk: 32 lanes are four AVX-512 (eight AVX2) vectors,
// enough independent add chains to hide the add latency and keep up with memory.
constexpr int kLanes = 32;

// Sum of x[i] (or x[i]^2) for one chunk. Lane j accumulates elements j, j + kLanes, ...; the
// lanes are then combined as a fixed binary tree. Written without an OpenMP reduction so that
// the compiler cannot reorder the additions: every clone computes the same bits. A float
// converts to double exactly and its square (48 significant bits) is exact in double, so
// contraction into FMA does not change the result either.
template <bool kSquare>
inline __attribute__((always_inline)) double chunk_sum(const float* x, int64_t n) {
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const double d = x[i + j];
      acc[j] += kSquare ? d * d : d;
    }
  }
  for (int j = 0; i + j < n; ++j) {
    const double d = x[i + j];
    acc[j] += kSquare ? d * d : d;
  }
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  }
  return acc[0];
}

TESSERA_CPU_KERNEL(double, chunk_sum_plain, (const float* x, int64_t n), (x, n)) {
  return chunk_sum<false>(x, n);
}

TESSERA_CPU_KERNEL(double, chunk_sum_squares, (const float* x, int64_t n), (x, n)) {
  return chunk_sum<true>(x, n);
}

template <typename ChunkFn>
double reduce_chunks(const float* x, int64_t n, ChunkFn chunk_fn) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  absl::InlinedVector<double, 64> partial(chunks);
  parallel_chunks(chunks, /*grain=*/1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t begin = c * kChunk;
      partial[c] = chunk_fn(x + begin, std::min(kChunk, n - begin));
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

double sum(const float* x, int64_t n) {
  return reduce_chunks(x, n, chunk_sum_plain);
}

double sum_squares(const float* x, int64_t n) {
  return reduce_chunks(x, n, chunk_sum_squares);
}

}  // namespace tessera::ops::cpu
