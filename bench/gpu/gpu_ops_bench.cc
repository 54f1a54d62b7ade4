// GPU op benchmarks (CUDA builds; scripts/gpu_check runs them): every figure next to the device's
// own limit measured in the same run, the form the GPU targets are stated in:
//   - bandwidth-bound ops (layernorm, GELU, AdamW) as GB/s and % of a device-to-device copy;
//   - bf16 matmul 4096^3 through ops::matmul (cuBLASLt) as TFLOP/s and % of a plain
//     cublasGemmEx on the same operands;
//   - attention forward + backward (T = 1024, D = 64: own kernel f32 and bf16, cuDNN's fused
//     attention bf16) as TFLOP/s and % of the bf16 matmul rate.
// Times come from CUDA events around `iters` launches on the compute stream after warm-up. Ends
// with one JSON line. Never a pass/fail: no assertions on timings.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/cuda/runtime.h"
#include "core/tensor.h"
#include "nlohmann/json.hpp"
#include "ops/activation.h"
#include "ops/adamw.h"
#include "ops/attention.h"
#include "ops/layernorm.h"
#include "ops/matmul.h"

namespace tessera {
namespace {

const Device kGpu = Device::cuda(0);

// Milliseconds per call of fn, on the compute stream.
double time_ms(const std::function<void()>& fn, int iters) {
  cudaStream_t s = cuda::compute_stream(0);
  for (int i = 0; i < 3; ++i) fn();
  cudaEvent_t a, b;
  cuda::check(cudaEventCreate(&a), "cudaEventCreate");
  cuda::check(cudaEventCreate(&b), "cudaEventCreate");
  cuda::check(cudaEventRecord(a, s), "cudaEventRecord");
  for (int i = 0; i < iters; ++i) fn();
  cuda::check(cudaEventRecord(b, s), "cudaEventRecord");
  cuda::check(cudaEventSynchronize(b), "cudaEventSynchronize");
  float ms = 0;
  cuda::check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return double(ms) / iters;
}

Tensor filled(const Shape& shape, DType dtype, float value) {
  Tensor host = Tensor::empty(shape, DType::f32);
  for (int64_t i = 0; i < host.numel(); ++i) host.data<float>()[i] = value * float(1 + i % 7);
  Tensor f32 = to_device(host, kGpu);
  if (dtype == DType::f32) return f32;
  Tensor out = Tensor::empty(shape, dtype, kGpu);
  ops::convert(f32, out);
  return out;
}

struct Row {
  std::string name;
  double ms, value;
  std::string unit;
  double percent;  // of the reference in the same run; < 0: none
  std::string of;
};

void print(const Row& r) {
  std::printf("%-36s %9.3f ms %10.1f %-8s", r.name.c_str(), r.ms, r.value, r.unit.c_str());
  if (r.percent >= 0) std::printf(" %5.1f %% of %s", r.percent, r.of.c_str());
  std::printf("\n");
}

int run() {
  TESSERA_CHECK(cuda_device_count() > 0, "gpu_ops_bench: no CUDA device");
  cudaDeviceProp prop{};
  cuda::check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("device: %s (sm_%d%d, %.1f GiB)\n", prop.name, prop.major, prop.minor,
              double(prop.totalGlobalMem) / (1 << 30));
  std::vector<Row> rows;
  cudaStream_t stream = cuda::compute_stream(0);

  // Device-to-device copy: the bandwidth reference (read + write bytes).
  const int64_t n = int64_t(1) << 28;  // 1 GiB of f32
  Tensor src = Tensor::zeros({n}, DType::f32, kGpu), dst = Tensor::zeros({n}, DType::f32, kGpu);
  double ms = time_ms(
      [&] {
        cuda::check(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), src.nbytes(),
                                    cudaMemcpyDeviceToDevice, stream),
                    "cudaMemcpyAsync");
      },
      20);
  const double copy_gbs = 2.0 * src.nbytes() / (ms * 1e6);
  rows.push_back({"d2d copy 1 GiB", ms, copy_gbs, "GB/s", -1, ""});

  {  // layernorm forward, (65536, 1024)
    const int64_t r = 65536, c = 1024;
    Tensor x = filled({r, c}, DType::f32, 0.01f), y = Tensor::empty({r, c}, DType::f32, kGpu);
    Tensor w = filled({c}, DType::f32, 1.0f), b = filled({c}, DType::f32, 0.0f);
    Tensor mean = Tensor::empty({r}, DType::f32, kGpu), rstd = Tensor::empty({r}, DType::f32, kGpu);
    ms = time_ms([&] { ops::layernorm_forward(x, w, b, y, mean, rstd); }, 50);
    const double gbs = 4.0 * (2 * r * c + 2 * c + 2 * r) / (ms * 1e6);
    rows.push_back(
        {"layernorm fwd (65536, 1024) f32", ms, gbs, "GB/s", 100 * gbs / copy_gbs, "d2d copy"});
  }
  {  // GELU forward, 2^28 elements
    ms = time_ms([&] { ops::gelu_forward(src, dst); }, 20);
    const double gbs = 8.0 * n / (ms * 1e6);
    rows.push_back({"gelu fwd 2^28 f32", ms, gbs, "GB/s", 100 * gbs / copy_gbs, "d2d copy"});
  }
  {  // AdamW, 2^27 parameters: reads p, g, m, v; writes p, m, v
    const int64_t p = int64_t(1) << 27;
    Tensor param = filled({p}, DType::f32, 0.01f), grad = filled({p}, DType::f32, 0.001f);
    Tensor m = Tensor::zeros({p}, DType::f32, kGpu), v = Tensor::zeros({p}, DType::f32, kGpu);
    ops::AdamWConfig cfg{.lr = 1e-4f};
    int64_t step = 0;
    ms = time_ms([&] { ops::adamw_step(param, grad, m, v, Tensor(), cfg, ++step); }, 20);
    const double gbs = 28.0 * p / (ms * 1e6);
    rows.push_back({"adamw 2^27 params f32", ms, gbs, "GB/s", 100 * gbs / copy_gbs, "d2d copy"});
  }
  src = dst = Tensor();

  double matmul_tflops = 0;
  {  // bf16 matmul 4096^3: ops::matmul against a plain cublasGemmEx on the same operands
    const int64_t s = 4096;
    Tensor a = filled({s, s}, DType::bf16, 0.001f), b = filled({s, s}, DType::bf16, 0.001f);
    Tensor c = Tensor::empty({s, s}, DType::bf16, kGpu);
    const double flop = 2.0 * s * s * s;
    cublasHandle_t handle;
    TESSERA_CHECK(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS, "cublasCreate failed");
    cublasSetStream(handle, stream);
    const float one = 1.0f, zero = 0.0f;
    const double ref_ms = time_ms(
        [&] {
          // Row-major C = A B is column-major C^T = B^T A^T.
          cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, int(s), int(s), int(s), &one, b.raw_data(),
                       CUDA_R_16BF, int(s), a.raw_data(), CUDA_R_16BF, int(s), &zero, c.raw_data(),
                       CUDA_R_16BF, int(s), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        },
        20);
    cublasDestroy(handle);
    const double ref_tflops = flop / (ref_ms * 1e9);
    rows.push_back({"cublasGemmEx bf16 4096^3", ref_ms, ref_tflops, "TFLOP/s", -1, ""});
    ms = time_ms([&] { ops::matmul(a, b, c); }, 20);
    matmul_tflops = flop / (ms * 1e9);
    rows.push_back({"ops::matmul bf16 4096^3", ms, matmul_tflops, "TFLOP/s",
                    100 * matmul_tflops / ref_tflops, "cublasGemmEx"});
  }
  {  // attention forward + backward, B=8, T=1024, H=16, D=64: own kernel f32 and bf16, cuDNN bf16
    const int64_t B = 8, T = 1024, H = 16, D = 64, C = H * D;
    struct Variant {
      const char* name;
      DType dtype;
      ops::AttentionBackend backend;
    };
    for (Variant v : {Variant{"own f32", DType::f32, ops::AttentionBackend::kOwn},
                      Variant{"own bf16", DType::bf16, ops::AttentionBackend::kOwn},
                      Variant{"cuDNN bf16", DType::bf16, ops::AttentionBackend::kCudnn}}) {
      for (bool causal : {false, true}) {
        const std::string name =
            std::string("attention f+b ") + v.name + " T=1024 d=64" + (causal ? " causal" : "");
        ops::set_attention_backend(v.backend);
        Tensor qkv = filled({B, T, 3 * C}, v.dtype, 0.01f);
        Tensor out = Tensor::empty({B, T, C}, v.dtype, kGpu);
        Tensor lse = Tensor::empty({B, H, T}, DType::f32, kGpu);
        Tensor dout = filled({B, T, C}, v.dtype, 0.01f);
        Tensor dqkv = Tensor::empty({B, T, 3 * C}, v.dtype, kGpu);
        try {
          ms = time_ms(
              [&] {
                ops::attention_forward(qkv, out, lse, int(H), causal);
                ops::attention_backward(dout, qkv, out, lse, dqkv, int(H), causal);
              },
              5);
        } catch (const std::exception& e) {
          std::printf("%-36s failed: %s\n", name.c_str(), e.what());
          cudaGetLastError();
          continue;
        }
        // Forward 2 products, backward 5, each 2*B*H*T*T*D FLOP; causal does about half.
        const double flop = 7.0 * 2 * B * H * T * T * D * (causal ? 0.5 : 1.0);
        const double tflops = flop / (ms * 1e9);
        rows.push_back({name, ms, tflops, "TFLOP/s", 100 * tflops / matmul_tflops, "bf16 matmul"});
      }
    }
    ops::set_attention_backend(ops::AttentionBackend::kAuto);
  }

  nlohmann::json j;
  j["device"] = prop.name;
  for (const Row& r : rows) {
    print(r);
    j["results"].push_back(
        {{"name", r.name}, {"ms", r.ms}, {r.unit, r.value}, {"percent", r.percent}});
  }
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace tessera

int main() {
  try {
    return tessera::run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_ops_bench: %s\n", e.what());
    return 1;
  }
}
