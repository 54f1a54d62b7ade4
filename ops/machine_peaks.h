#pragma once
// The machine's own limits, measured in the running process: a large f32 GEMM (oneDNN) for
// FLOP/s and a large multi-threaded memcpy for bandwidth. Benchmarks report their figures as
// shares of these; the trainer's MFU divides by the sgemm figure.
//
// Bandwidth convention, used by every benchmark: bytes read + bytes written per second. A memcpy
// of S bytes moves 2·S.

#include <string>

#include "core/dtype.h"

namespace tessera::ops {

struct Peaks {
  double sgemm_gflops = 0;  // dnnl_sgemm, n = 2048, all threads, best of several runs
  double memcpy_gbs = 0;    // 256 MiB copy split over all threads, best of several runs
};

// Both, measured once per process on first call (about a second).
const Peaks& peaks();
// Only the sgemm figure (about 0.3 s): what the trainer needs for MFU.
double sgemm_peak_gflops();
// The matmul rate of `device` in `dtype` (f32 or bf16), measured once per (device, dtype): the
// CPU's figure is sgemm_peak_gflops(); on CUDA the best of a few 4096^3 products through
// ops::matmul (cuBLASLt), about a tenth of a second. The trainer's MFU peak on a GPU.
double matmul_peak_gflops(Device device, DType dtype);

// Which CPU code paths run, e.g. "cpu kernels avx2 (the best this CPU has); bf16 matmul f32 sgemm
// on bf16 operands (...)": the start-up line of `tessera train` and `tessera info`. Throws
// tessera::Error for a bad TESSERA_CPU_ISA.
std::string cpu_paths_summary();

}  // namespace tessera::ops
