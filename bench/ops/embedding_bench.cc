#include <benchmark/benchmark.h>

#include "core/tensor.h"
#include "ops/embedding.h"

namespace tessera {
namespace {

// n token ids spread over [0, v) (a fixed pseudo-random pattern).
Tensor bench_ids(int64_t n, int64_t v) {
  Tensor ids = Tensor::empty({n}, DType::i32);
  for (int64_t i = 0; i < n; ++i) ids.data<int32_t>()[i] = int32_t((i * 2654435761LL) % v);
  return ids;
}

// Forward reads the ids and one table row per id, writes out: 4 (n + 2 n c) bytes.
void BM_EmbeddingForward(benchmark::State& state) {
  const int64_t n = state.range(0), v = state.range(1), c = state.range(2);
  Tensor ids = bench_ids(n, v), table = Tensor::zeros({v, c}, DType::f32),
         out = Tensor::zeros({n, c}, DType::f32);
  for (auto _ : state) ops::embedding_forward(ids, table, out);
  state.counters["GB/s"] = benchmark::Counter(
      4.0 * double(n + 2 * n * c) * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EmbeddingForward)
    ->Args({8192, 8192, 768})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Backward reads the ids and dout, and reads and writes one dtable row per id: 4 (n + 3 n c).
void BM_EmbeddingBackward(benchmark::State& state) {
  const int64_t n = state.range(0), v = state.range(1), c = state.range(2);
  Tensor ids = bench_ids(n, v), dout = Tensor::zeros({n, c}, DType::f32),
         dtable = Tensor::zeros({v, c}, DType::f32);
  for (auto _ : state) ops::embedding_backward(dout, ids, dtable);
  state.counters["GB/s"] = benchmark::Counter(
      4.0 * double(n + 3 * n * c) * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EmbeddingBackward)
    ->Args({8192, 8192, 768})  // token embedding: scattered rows
    ->Args({8192, 1024, 768})  // position embedding: each row 8 times
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tessera
