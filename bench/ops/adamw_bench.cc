#include <benchmark/benchmark.h>

#include "core/tensor.h"
#include "ops/adamw.h"

namespace tessera {
namespace {

// One AdamW step over n parameters: reads p, g, m, v (and the u8 mask) and writes p, m, v.
// Arg 1 = with decay mask.
void BM_AdamW(benchmark::State& state) {
  const int64_t n = state.range(0);
  const bool masked = state.range(1) != 0;
  Tensor p = Tensor::zeros({n}, DType::f32), g = Tensor::zeros({n}, DType::f32),
         m = Tensor::zeros({n}, DType::f32), v = Tensor::zeros({n}, DType::f32);
  Tensor mask;
  if (masked) {
    mask = Tensor::empty({n}, DType::u8);
    for (int64_t i = 0; i < n; ++i) mask.data<uint8_t>()[i] = uint8_t(i % 3 != 0);
  }
  const ops::AdamWConfig cfg{.lr = 1e-4f, .weight_decay = 0.1f};
  int64_t step = 0;
  for (auto _ : state) ops::adamw_step(p, g, m, v, mask, cfg, ++step);
  const double bytes = double(n) * (4 * 4 + 3 * 4 + (masked ? 1 : 0));
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AdamW)
    ->ArgNames({"n", "mask"})
    ->Args({16 << 20, 0})
    ->Args({16 << 20, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tessera
