#include <benchmark/benchmark.h>

#include "core/tensor.h"
#include "ops/cross_entropy.h"

namespace tessera {
namespace {

// Forward reads the logits and targets, writes lse (and the loss).
void BM_CrossEntropyForward(benchmark::State& state) {
  const int64_t n = state.range(0), v = state.range(1);
  Tensor logits = Tensor::zeros({n, v}, DType::f32), targets = Tensor::zeros({n}, DType::i32);
  Tensor loss = Tensor::zeros({1}, DType::f32), lse = Tensor::zeros({n}, DType::f32);
  for (auto _ : state) ops::cross_entropy_forward(logits, targets, loss, lse);
  state.counters["GB/s"] = benchmark::Counter(
      4.0 * double(n * v + 2 * n) * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CrossEntropyForward)->Args({2048, 8192})->UseRealTime()->Unit(benchmark::kMillisecond);

// Backward reads the logits, targets and lse, writes dlogits.
void BM_CrossEntropyBackward(benchmark::State& state) {
  const int64_t n = state.range(0), v = state.range(1);
  Tensor logits = Tensor::zeros({n, v}, DType::f32), targets = Tensor::zeros({n}, DType::i32);
  Tensor lse = Tensor::zeros({n}, DType::f32), dlogits = Tensor::zeros({n, v}, DType::f32);
  for (auto _ : state) ops::cross_entropy_backward(logits, targets, lse, 1.0f, dlogits);
  state.counters["GB/s"] =
      benchmark::Counter(4.0 * double(2 * n * v + 2 * n) * 1e-9 * double(state.iterations()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CrossEntropyBackward)
    ->Args({2048, 8192})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tessera
