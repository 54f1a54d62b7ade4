#include <benchmark/benchmark.h>

#include "core/tensor.h"
#include "ops/modulate.h"

namespace tessera {
namespace {

// Forward reads x, shift, scale; writes y.
void BM_ModulateForward(benchmark::State& state) {
  const int64_t b = state.range(0), t = state.range(1), c = state.range(2);
  Tensor x = Tensor::zeros({b, t, c}, DType::f32), y = Tensor::zeros({b, t, c}, DType::f32);
  Tensor shift = Tensor::zeros({b, c}, DType::f32), scale = Tensor::zeros({b, c}, DType::f32);
  for (auto _ : state) ops::modulate_forward(x, shift, scale, y);
  state.counters["GB/s"] = benchmark::Counter(
      4.0 * double(2 * b * t * c + 2 * b * c) * 1e-9 * double(state.iterations()),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ModulateForward)
    ->Args({8, 256, 384})
    ->Args({16, 1024, 768})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Backward reads dy, x, scale; writes dx, dshift, dscale.
void BM_ModulateBackward(benchmark::State& state) {
  const int64_t b = state.range(0), t = state.range(1), c = state.range(2);
  Tensor x = Tensor::zeros({b, t, c}, DType::f32), dy = Tensor::zeros({b, t, c}, DType::f32),
         dx = Tensor::zeros({b, t, c}, DType::f32);
  Tensor scale = Tensor::zeros({b, c}, DType::f32), ds = Tensor::zeros({b, c}, DType::f32),
         dsc = Tensor::zeros({b, c}, DType::f32);
  for (auto _ : state) ops::modulate_backward(dy, x, scale, dx, ds, dsc);
  state.counters["GB/s"] = benchmark::Counter(
      4.0 * double(3 * b * t * c + 3 * b * c) * 1e-9 * double(state.iterations()),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ModulateBackward)
    ->Args({8, 256, 384})
    ->Args({16, 1024, 768})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tessera
