#include <benchmark/benchmark.h>

#include <cstring>

#include "core/tensor.h"
#include "dnnl.hpp"
#include "ops/activation.h"

namespace tessera {
namespace {

void on_8m_elements(benchmark::internal::Benchmark* b) {
  b->Arg(8 << 20)->UseRealTime()->Unit(benchmark::kMillisecond);
}

// Forward reads x and writes y: 8 bytes per element.
void BM_Forward(benchmark::State& state, void (*forward)(const Tensor& x, const Tensor& y)) {
  const int64_t n = state.range(0);
  Tensor x = Tensor::zeros({n}, DType::f32), y = Tensor::zeros({n}, DType::f32);
  for (auto _ : state) forward(x, y);
  state.counters["GB/s"] = benchmark::Counter(double(n) * 8 * 1e-9 * double(state.iterations()),
                                              benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_Forward, gelu, ops::gelu_forward)->Apply(on_8m_elements);
BENCHMARK_CAPTURE(BM_Forward, gelu_erf, ops::gelu_erf_forward)->Apply(on_8m_elements);
BENCHMARK_CAPTURE(BM_Forward, quick_gelu, ops::quick_gelu_forward)->Apply(on_8m_elements);
BENCHMARK_CAPTURE(BM_Forward, silu, ops::silu_forward)->Apply(on_8m_elements);

// Backward reads dy and x, writes dx: 12 bytes per element.
void BM_Backward(benchmark::State& state,
                 void (*backward)(const Tensor& dy, const Tensor& x, const Tensor& dx)) {
  const int64_t n = state.range(0);
  Tensor x = Tensor::zeros({n}, DType::f32), dy = Tensor::zeros({n}, DType::f32),
         dx = Tensor::zeros({n}, DType::f32);
  for (auto _ : state) backward(dy, x, dx);
  state.counters["GB/s"] = benchmark::Counter(double(n) * 12 * 1e-9 * double(state.iterations()),
                                              benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_Backward, gelu, ops::gelu_backward)->Apply(on_8m_elements);
BENCHMARK_CAPTURE(BM_Backward, gelu_erf, ops::gelu_erf_backward)->Apply(on_8m_elements);
BENCHMARK_CAPTURE(BM_Backward, quick_gelu, ops::quick_gelu_backward)->Apply(on_8m_elements);
BENCHMARK_CAPTURE(BM_Backward, silu, ops::silu_backward)->Apply(on_8m_elements);

// oneDNN's eltwise gelu_tanh (range(2) == 0) or gelu_erf (1), forward (range(1) == 0) or
// backward (1), with primitives built once outside the loop: the comparison behind the own
// kernels in ops/cpu/activation.cc.
void BM_GeluOneDnn(benchmark::State& state) {
  using namespace dnnl;
  const int64_t n = state.range(0);
  const bool backward = state.range(1) != 0;
  const algorithm alg = state.range(2) ? algorithm::eltwise_gelu_erf : algorithm::eltwise_gelu_tanh;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::desc md({n}, memory::data_type::f32, memory::format_tag::a);
  eltwise_forward::desc fd(prop_kind::forward_training, alg, md, 0.f, 0.f);
  eltwise_forward::primitive_desc fpd(fd, eng);
  eltwise_backward::desc bd(alg, md, md, 0.f, 0.f);
  eltwise_backward::primitive_desc bpd(bd, eng, fpd);
  memory a(md, eng), b(md, eng), c(md, eng);
  for (memory* m : {&a, &b, &c}) std::memset(m->get_data_handle(), 0, size_t(n) * 4);
  eltwise_forward fwd(fpd);
  eltwise_backward bwd(bpd);
  for (auto _ : state) {
    if (backward) {
      bwd.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_DIFF_DST, b}, {DNNL_ARG_DIFF_SRC, c}});
    } else {
      fwd.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_DST, b}});
    }
    s.wait();
  }
  state.counters["GB/s"] =
      benchmark::Counter(double(n) * (backward ? 12 : 8) * 1e-9 * double(state.iterations()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_GeluOneDnn)
    ->Args({8 << 20, 0, 0})
    ->Args({8 << 20, 1, 0})
    ->Args({8 << 20, 0, 1})
    ->Args({8 << 20, 1, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tessera
