#pragma once
// Splits [0, n) into one contiguous chunk per thread (at least `grain` elements each) and calls
// fn(begin, end) for each. The split depends only on n, grain and the thread count, never on
// timing, so kernels that reduce within a chunk stay deterministic for a given thread count.

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace tessera::ops::cpu {

template <typename Fn>
void parallel_chunks(int64_t n, int64_t grain, Fn&& fn) {
  const int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(grain, 1));
  const int64_t chunks = std::min<int64_t>(omp_get_max_threads(), max_chunks);
  if (chunks <= 1 || omp_in_parallel()) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
    if (begin < end) fn(begin, end);
  }
}

// Elements per chunk below which threading costs more than it saves for a memory-bound loop.
inline constexpr int64_t kElementwiseGrain = 1 << 15;

}  // namespace tessera::ops::cpu
