#include <benchmark/benchmark.h>

#include "core/random.h"
#include "core/tensor.h"
#include "ops/softmax.h"

namespace tessera {
namespace {

// Args: rows, cols. Forward reads x and writes y (8 bytes per element).
void BM_SoftmaxForward(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  Tensor x = Tensor::empty({rows, cols}, DType::f32), y = Tensor::empty({rows, cols}, DType::f32);
  fill_uniform(x, 1, 0, -4.0f, 4.0f);
  for (auto _ : state) ops::softmax_forward(x, y);
  state.counters["GB/s"] = benchmark::Counter(
      double(rows) * cols * 8 * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SoftmaxForward)
    ->ArgNames({"rows", "cols"})
    ->Args({12288, 256})
    ->Args({512, 32000})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Backward reads dy and y and writes dx (12 bytes per element).
void BM_SoftmaxBackward(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  Tensor dy = Tensor::empty({rows, cols}, DType::f32), y = Tensor::empty({rows, cols}, DType::f32);
  Tensor dx = Tensor::empty({rows, cols}, DType::f32);
  fill_uniform(dy, 1, 1, -1.0f, 1.0f);
  fill_uniform(y, 1, 2, 0.0f, 1.0f);
  for (auto _ : state) ops::softmax_backward(dy, y, dx);
  state.counters["GB/s"] = benchmark::Counter(
      double(rows) * cols * 12 * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SoftmaxBackward)
    ->ArgNames({"rows", "cols"})
    ->Args({12288, 256})
    ->Args({512, 32000})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tessera
