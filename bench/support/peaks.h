#pragma once
// The machine's own limits, measured in the same run as the benchmarks that are compared with
// them: a large f32 GEMM (oneDNN) for FLOP/s and a large multi-threaded memcpy for bandwidth.
//
// Bandwidth convention, used by every benchmark: bytes read + bytes written per second. A memcpy
// of S bytes moves 2·S.

namespace tessera::bench {

struct Peaks {
  double sgemm_gflops = 0;  // dnnl_sgemm, n = 2048, all threads, best of several runs
  double memcpy_gbs = 0;    // 256 MiB copy split over all threads, best of several runs
};

// Measured once per process on first call.
const Peaks& peaks();

}  // namespace tessera::bench
