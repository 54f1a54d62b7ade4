#include "ops/machine_peaks.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/random.h"
#include "core/tensor.h"
#include "core/timer.h"
#include "dnnl.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/matmul.h"
#include "ops/matmul.h"

namespace tessera::ops {
namespace {

double measure_sgemm(int n) {
  cpu::cpu_isa();  // TESSERA_CPU_ISA caps oneDNN before this first sgemm
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

// n^3 products through ops::matmul on `device`; each timed up to a one-element read-back, which
// waits for the product (copies are ordered after the compute stream).
double measure_device_matmul(Device device, DType dtype, int64_t n) {
  // Random operands: tensor cores draw less power on zeros and can run faster than on real data.
  auto random_operand = [&](uint64_t stream) {
    Tensor host = Tensor::empty({n, n}, DType::f32);
    fill_uniform(host, 7, stream, -1.0f, 1.0f);
    Tensor on_device = to_device(host, device);
    if (dtype == DType::f32) return on_device;
    Tensor converted = Tensor::empty({n, n}, dtype, device);
    convert(on_device, converted);
    return converted;
  };
  Tensor a = random_operand(1), b = random_operand(2);
  Tensor out = Tensor::empty({n, n}, DType::f32, device);
  auto finish = [&] { (void)to_device(out.flat_view(0, {1}), Device::cpu()); };
  matmul(a, b, out);  // warm-up: the library picks its algorithm
  finish();
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    Timer t;
    matmul(a, b, out);
    finish();
    best = std::max(best, 2.0 * double(n) * double(n) * double(n) / t.seconds() * 1e-9);
  }
  return best;
}

}  // namespace

double matmul_peak_gflops(Device device, DType dtype) {
  if (device.is_cpu()) return sgemm_peak_gflops();
  static std::mutex mutex;
  static std::map<std::pair<int, int>, double> measured;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(device.index, int(dtype));
  auto it = measured.find(key);
  if (it == measured.end())
    it = measured.emplace(key, measure_device_matmul(device, dtype, 4096)).first;
  return it->second;
}

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

std::string cpu_paths_summary() {
  return absl::StrCat("cpu kernels ", cpu::cpu_isa_summary(), "; bf16 matmul ",
                      cpu::bf16_gemm_path());
}

}  // namespace tessera::ops
