#include <benchmark/benchmark.h>

#include "core/tensor.h"
#include "ops/reduce.h"

namespace tessera {
namespace {

// Global-norm clipping's pass over the gradient buffer: reads 1 f32 per element, writes nothing.
void BM_SumSquares(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor x = Tensor::zeros({n}, DType::f32);
  for (auto _ : state) benchmark::DoNotOptimize(ops::sum_squares(x));
  state.counters["GB/s"] = benchmark::Counter(double(n) * 4 * 1e-9 * double(state.iterations()),
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SumSquares)->Arg(64 << 20)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tessera
