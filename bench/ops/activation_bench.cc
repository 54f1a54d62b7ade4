#include <benchmark/benchmark.h>

#include <cstring>
#include <string>

#include "bench/support/peer.h"
#include "core/tensor.h"
#include "dnnl.hpp"
#include "ops/activation.h"

namespace tessera {
namespace {

// 64 Ki elements (in L2: the kernel's arithmetic) and 8 Mi (memory traffic too).
void on_sizes(benchmark::internal::Benchmark* b) {
  b->Arg(64 << 10)->Arg(8 << 20)->UseRealTime()->Unit(benchmark::kMillisecond);
}

// Inputs spread over [-6, 6] (every regime of each activation; no denormal results), the same
// for the own kernels and oneDNN's.
void fill_inputs(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = -6.0f + 12.0f * float(i % 4099) / 4098.0f;
}

// Printed after the run, at each size: the exact GELU against oneDNN's gelu_erf and against the
// own tanh form, and the tanh form against oneDNN's gelu_tanh.
bool register_peers() {
  for (const char* n : {"/65536/", "/8388608/"}) {
    const std::string size = n;
    for (const char* pass : {"forward", "backward"}) {
      const std::string own = std::string(pass) == "forward" ? "BM_Forward" : "BM_Backward";
      const std::string onednn = std::string("BM_GeluOneDnn/");
      bench::compare_with_peer(own + "/gelu_erf" + size, onednn + "erf_" + pass + size);
      bench::compare_with_peer(own + "/gelu_erf" + size, own + "/gelu" + size);
      bench::compare_with_peer(own + "/gelu" + size, onednn + "tanh_" + pass + size);
    }
  }
  return true;
}
const bool kPeers = register_peers();

// Forward reads x and writes y: 8 bytes per element.
void BM_Forward(benchmark::State& state, void (*forward)(const Tensor& x, const Tensor& y)) {
  const int64_t n = state.range(0);
  Tensor x = Tensor::zeros({n}, DType::f32), y = Tensor::zeros({n}, DType::f32);
  fill_inputs(x.data<float>(), n);
  for (auto _ : state) forward(x, y);
  state.counters["GB/s"] = benchmark::Counter(double(n) * 8 * 1e-9 * double(state.iterations()),
                                              benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_Forward, gelu, ops::gelu_forward)->Apply(on_sizes);
BENCHMARK_CAPTURE(BM_Forward, gelu_erf, ops::gelu_erf_forward)->Apply(on_sizes);
BENCHMARK_CAPTURE(BM_Forward, quick_gelu, ops::quick_gelu_forward)->Apply(on_sizes);
BENCHMARK_CAPTURE(BM_Forward, silu, ops::silu_forward)->Apply(on_sizes);

// Backward reads dy and x, writes dx: 12 bytes per element.
void BM_Backward(benchmark::State& state,
                 void (*backward)(const Tensor& dy, const Tensor& x, const Tensor& dx)) {
  const int64_t n = state.range(0);
  Tensor x = Tensor::zeros({n}, DType::f32), dy = Tensor::zeros({n}, DType::f32),
         dx = Tensor::zeros({n}, DType::f32);
  fill_inputs(x.data<float>(), n);
  fill_inputs(dy.data<float>(), n);
  for (auto _ : state) backward(dy, x, dx);
  state.counters["GB/s"] = benchmark::Counter(double(n) * 12 * 1e-9 * double(state.iterations()),
                                              benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_Backward, gelu, ops::gelu_backward)->Apply(on_sizes);
BENCHMARK_CAPTURE(BM_Backward, gelu_erf, ops::gelu_erf_backward)->Apply(on_sizes);
BENCHMARK_CAPTURE(BM_Backward, quick_gelu, ops::quick_gelu_backward)->Apply(on_sizes);
BENCHMARK_CAPTURE(BM_Backward, silu, ops::silu_backward)->Apply(on_sizes);

// oneDNN's eltwise gelu_tanh or gelu_erf, forward or backward, with primitives built once outside
// the loop: the comparison behind the own kernels in ops/cpu/activation.cc.
void BM_GeluOneDnn(benchmark::State& state, dnnl::algorithm alg, bool backward) {
  using namespace dnnl;
  const int64_t n = state.range(0);
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::desc md({n}, memory::data_type::f32, memory::format_tag::a);
  eltwise_forward::desc fd(prop_kind::forward_training, alg, md, 0.f, 0.f);
  eltwise_forward::primitive_desc fpd(fd, eng);
  eltwise_backward::desc bd(alg, md, md, 0.f, 0.f);
  eltwise_backward::primitive_desc bpd(bd, eng, fpd);
  memory a(md, eng), b(md, eng), c(md, eng);
  for (memory* m : {&a, &b, &c}) std::memset(m->get_data_handle(), 0, size_t(n) * 4);
  fill_inputs(static_cast<float*>(a.get_data_handle()), n);
  fill_inputs(static_cast<float*>(b.get_data_handle()), n);
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
BENCHMARK_CAPTURE(BM_GeluOneDnn, tanh_forward, dnnl::algorithm::eltwise_gelu_tanh, false)
    ->Apply(on_sizes);
BENCHMARK_CAPTURE(BM_GeluOneDnn, tanh_backward, dnnl::algorithm::eltwise_gelu_tanh, true)
    ->Apply(on_sizes);
BENCHMARK_CAPTURE(BM_GeluOneDnn, erf_forward, dnnl::algorithm::eltwise_gelu_erf, false)
    ->Apply(on_sizes);
BENCHMARK_CAPTURE(BM_GeluOneDnn, erf_backward, dnnl::algorithm::eltwise_gelu_erf, true)
    ->Apply(on_sizes);

}  // namespace
}  // namespace tessera
