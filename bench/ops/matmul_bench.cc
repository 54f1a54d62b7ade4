#include <benchmark/benchmark.h>

#include "core/tensor.h"
#include "ops/matmul.h"

namespace tessera {
namespace {

void set_rate(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops_per_iteration * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

// Square GEMM n x n x n, f32 (dnnl_sgemm) or bf16 operands with f32 output (oneDNN brgemm).
void gemm(benchmark::State& state, DType operands) {
  const int64_t n = state.range(0);
  Tensor a = Tensor::zeros({n, n}, DType::f32), b = Tensor::zeros({n, n}, DType::f32);
  if (operands == DType::bf16) {
    Tensor a16 = Tensor::empty({n, n}, DType::bf16), b16 = Tensor::empty({n, n}, DType::bf16);
    ops::convert(a, a16);
    ops::convert(b, b16);
    a = a16;
    b = b16;
  }
  Tensor c = Tensor::zeros({n, n}, DType::f32);
  ops::matmul(a, b, c);  // warm-up: the bf16 primitive is created here, not timed
  for (auto _ : state) ops::matmul(a, b, c);
  set_rate(state, 2.0 * n * n * double(n));
}
void BM_MatmulF32(benchmark::State& state) {
  gemm(state, DType::f32);
}
void BM_MatmulBf16(benchmark::State& state) {
  gemm(state, DType::bf16);
}
BENCHMARK(BM_MatmulF32)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(2048)
    ->Arg(4096)
    ->MinTime(0.2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MatmulBf16)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(2048)
    ->Arg(4096)
    ->MinTime(0.2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Attention-sized batched product (B*H = 24 heads of T = 256, head size 64): the batch-parallel
// path of small GEMMs.
void BM_MatmulBatchedF32(benchmark::State& state) {
  const int64_t batch = 24, t = 256, hs = 64;
  Tensor q = Tensor::zeros({batch, t, hs}, DType::f32),
         k = Tensor::zeros({batch, t, hs}, DType::f32);
  Tensor s = Tensor::zeros({batch, t, t}, DType::f32);
  ops::matmul(q, k, s, false, /*trans_b=*/true);  // warm-up: oneDNN JITs its kernels on first use
  for (auto _ : state) ops::matmul(q, k, s, false, /*trans_b=*/true);
  set_rate(state, 2.0 * batch * t * t * double(hs));
}
BENCHMARK(BM_MatmulBatchedF32)->MinTime(0.2)->UseRealTime()->Unit(benchmark::kMillisecond);

// One Linear layer's forward + backward (y, dx, dweight, dbias) at the model's shapes:
// rows 2048, in 384, out = range(0) (1152: qkv, 1536: MLP up). Three GEMMs of 2*rows*in*out.
void linear(benchmark::State& state, DType operands) {
  const int64_t rows = 2048, in = 384, out = state.range(0);
  Tensor x = Tensor::zeros({rows, in}, operands), w = Tensor::zeros({out, in}, operands);
  Tensor bias = Tensor::zeros({out}, DType::f32);
  Tensor y = Tensor::zeros({rows, out}, operands), dy = Tensor::zeros({rows, out}, operands);
  Tensor dx = Tensor::zeros({rows, in}, operands);
  Tensor dw = Tensor::zeros({out, in}, DType::f32), db = Tensor::zeros({out}, DType::f32);
  ops::linear_forward(x, w, bias, y);
  ops::linear_backward(dy, x, w, dx, dw, db);
  for (auto _ : state) {
    ops::linear_forward(x, w, bias, y);
    ops::linear_backward(dy, x, w, dx, dw, db);
  }
  set_rate(state, 3 * 2.0 * rows * in * double(out));
}
void BM_LinearFwdBwdF32(benchmark::State& state) {
  linear(state, DType::f32);
}
void BM_LinearFwdBwdBf16(benchmark::State& state) {
  linear(state, DType::bf16);
}
BENCHMARK(BM_LinearFwdBwdF32)
    ->Arg(1152)
    ->Arg(1536)
    ->MinTime(0.2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LinearFwdBwdBf16)
    ->Arg(1152)
    ->Arg(1536)
    ->MinTime(0.2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// f32 -> bf16 conversion: reads 4 and writes 2 bytes per element.
void BM_ConvertToBf16(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor src = Tensor::zeros({n}, DType::f32), dst = Tensor::zeros({n}, DType::bf16);
  for (auto _ : state) ops::convert(src, dst);
  state.counters["GB/s"] = benchmark::Counter(double(n) * 6 * 1e-9 * double(state.iterations()),
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ConvertToBf16)
    ->Arg(8 << 20)
    ->MinTime(0.2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tessera
