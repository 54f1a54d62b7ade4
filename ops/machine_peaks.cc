#include "ops/machine_peaks.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/timer.h"
#include "dnnl.h"

namespace tessera::ops {
namespace {

double measure_sgemm(int n) {
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n, 0.f);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    Timer t;
    dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    best = std::max(best, 2.0 * n * n * double(n) / t.seconds() * 1e-9);
  }
  return best;
}

double measure_memcpy(size_t bytes) {
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {
    Timer t;
#pragma omp parallel
    {
      int n = omp_get_num_threads(), i = omp_get_thread_num();
      size_t begin = bytes * i / n, end = bytes * (i + 1) / n;
      std::memcpy(dst.data() + begin, src.data() + begin, end - begin);
    }
    best = std::max(best, 2.0 * double(bytes) / t.seconds() * 1e-9);
  }
  return best;
}

}  // namespace

double sgemm_peak_gflops() {
  static const double gflops = measure_sgemm(2048);
  return gflops;
}

const Peaks& peaks() {
  static const Peaks p = [] {
    Peaks r;
    r.sgemm_gflops = sgemm_peak_gflops();
    r.memcpy_gbs = measure_memcpy(size_t(256) << 20);
    return r;
  }();
  return p;
}

}  // namespace tessera::ops
