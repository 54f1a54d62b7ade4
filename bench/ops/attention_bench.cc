#include <benchmark/benchmark.h>

#include "core/random.h"
#include "core/tensor.h"
#include "ops/attention.h"

namespace tessera {
namespace {

// Matmul FLOPs that attention needs: forward q k^T and P v, 4·B·H·T²·D; backward recomputes S
// and forms dV, dP, dQ, dK, 10·B·H·T²·D. Causal needs half of each.
double attention_flops(int64_t B, int64_t H, int64_t T, int64_t D, bool causal, bool backward) {
  const double per = double(B) * H * T * T * D * (backward ? 14 : 4);
  return causal ? per / 2 : per;
}

// Args: B, H, T, D, causal, with backward.
void BM_Attention(benchmark::State& state) {
  const int64_t B = state.range(0), H = state.range(1), T = state.range(2), D = state.range(3);
  const bool causal = state.range(4) != 0, backward = state.range(5) != 0;
  const int64_t C = H * D;
  Tensor qkv = Tensor::empty({B, T, 3 * C}, DType::f32);
  Tensor dout = Tensor::empty({B, T, C}, DType::f32);
  fill_normal(qkv, 1, 0, 0.0f, 1.0f);
  fill_normal(dout, 1, 1, 0.0f, 1.0f);
  Tensor out = Tensor::empty({B, T, C}, DType::f32), lse = Tensor::empty({B, H, T}, DType::f32);
  Tensor dqkv = Tensor::empty({B, T, 3 * C}, DType::f32);
  for (auto _ : state) {
    ops::attention_forward(qkv, out, lse, static_cast<int>(H), causal);
    if (backward) ops::attention_backward(dout, qkv, out, lse, dqkv, static_cast<int>(H), causal);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      attention_flops(B, H, T, D, causal, backward) * 1e-9 * double(state.iterations()),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Attention)
    ->ArgNames({"B", "H", "T", "D", "causal", "bwd"})
    ->Args({8, 6, 256, 64, 0, 1})
    ->Args({8, 6, 256, 64, 1, 1})
    ->Args({8, 6, 256, 64, 0, 0})
    ->Args({8, 6, 256, 64, 1, 0})
    ->Args({2, 6, 1024, 64, 0, 1})
    ->Args({2, 6, 1024, 64, 1, 1})
    ->Args({2, 6, 1024, 64, 1, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(0.3);

}  // namespace
}  // namespace tessera
