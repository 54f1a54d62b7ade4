#include <benchmark/benchmark.h>

#include "core/tensor.h"
#include "ops/elementwise.h"

namespace tessera {
namespace {

// Residual add: reads 2 and writes 1 f32 per element.
void BM_Add(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = Tensor::zeros({n}, DType::f32), b = Tensor::zeros({n}, DType::f32),
         out = Tensor::zeros({n}, DType::f32);
  for (auto _ : state) ops::add(a, b, out);
  state.counters["GB/s"] = benchmark::Counter(double(n) * 12 * 1e-9 * double(state.iterations()),
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Add)->Arg(8 << 20)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tessera
