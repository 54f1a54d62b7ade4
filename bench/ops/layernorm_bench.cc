#include <benchmark/benchmark.h>

#include <cstring>

#include "core/tensor.h"
#include "dnnl.hpp"
#include "ops/layernorm.h"

namespace tessera {
namespace {

// Forward: reads x, weight, bias; writes y, mean, rstd.
void BM_LayerNormForward(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1);
  Tensor x = Tensor::zeros({n, c}, DType::f32), y = Tensor::zeros({n, c}, DType::f32);
  Tensor w = Tensor::zeros({c}, DType::f32), b = Tensor::zeros({c}, DType::f32);
  Tensor mean = Tensor::zeros({n}, DType::f32), rstd = Tensor::zeros({n}, DType::f32);
  for (auto _ : state) ops::layernorm_forward(x, w, b, y, mean, rstd);
  const double bytes = 4.0 * (2 * n * c + 2 * c + 2 * n);
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LayerNormForward)
    ->Args({8 * 256, 384})
    ->Args({16384, 768})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Backward: reads dy, x, weight, mean, rstd; writes dx; reads and writes dweight, dbias.
void BM_LayerNormBackward(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1);
  Tensor x = Tensor::zeros({n, c}, DType::f32), dy = Tensor::zeros({n, c}, DType::f32),
         dx = Tensor::zeros({n, c}, DType::f32);
  Tensor w = Tensor::zeros({c}, DType::f32), dw = Tensor::zeros({c}, DType::f32),
         db = Tensor::zeros({c}, DType::f32);
  Tensor mean = Tensor::zeros({n}, DType::f32), rstd = Tensor::zeros({n}, DType::f32);
  for (auto _ : state) ops::layernorm_backward(dy, x, w, mean, rstd, dx, dw, db);
  const double bytes = 4.0 * (3 * n * c + 5 * c + 2 * n);
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LayerNormBackward)
    ->Args({8 * 256, 384})
    ->Args({16384, 768})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// oneDNN's layer_normalization forward with the primitive built once outside the loop (its best
// case), kept as the comparison behind the choice of an own kernel in ops/cpu/layernorm.cc.
void BM_LayerNormForwardOneDnn(benchmark::State& state) {
  using namespace dnnl;
  const int64_t n = state.range(0), c = state.range(1);
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::desc md({n, c}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc stat({n}, memory::data_type::f32, memory::format_tag::a);
  memory::desc wd({c}, memory::data_type::f32, memory::format_tag::a);
  layer_normalization_forward::desc d(
      prop_kind::forward_training, md, 1e-5f,
      normalization_flags::use_scale | normalization_flags::use_shift);
  layer_normalization_forward::primitive_desc pd(d, eng);
  memory src(md, eng), dst(md, eng), mean(stat, eng), var(stat, eng), scale(wd, eng),
      shift(wd, eng);
  for (memory* m : {&src, &scale, &shift}) {
    std::memset(m->get_data_handle(), 0, m->get_desc().get_size());
  }
  layer_normalization_forward prim(pd);
  for (auto _ : state) {
    prim.execute(s, {{DNNL_ARG_SRC, src},
                     {DNNL_ARG_DST, dst},
                     {DNNL_ARG_MEAN, mean},
                     {DNNL_ARG_VARIANCE, var},
                     {DNNL_ARG_SCALE, scale},
                     {DNNL_ARG_SHIFT, shift}});
    s.wait();
  }
  const double bytes = 4.0 * (2 * n * c + 2 * c + 2 * n);
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LayerNormForwardOneDnn)
    ->Args({8 * 256, 384})
    ->Args({16384, 768})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tessera
