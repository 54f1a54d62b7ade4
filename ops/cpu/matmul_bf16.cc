// bf16 GEMM (f32 accumulation) through the oneDNN matmul primitive. On CPUs with AVX512-BF16 it
// picks the brgemm kernel (vdpbf16ps): about 2x the f32 sgemm rate per core on this machine, and
// it accepts every transpose as memory strides without a copy.
//
// Creating a primitive costs about a millisecond, so primitives are cached by everything they
// were created for (shape, transposes, dtypes, alpha, beta, bias). The cache is shared by all
// threads behind a mutex; a cached primitive is executed concurrently from several threads, which
// oneDNN allows because each call brings its own scratchpad (scratchpad_mode::user, one buffer
// per thread) instead of the library's shared one.
#include <bit>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "core/error.h"
#include "dnnl.hpp"
#include "ops/cpu/matmul.h"

namespace tessera::ops::cpu {
namespace {

using dnnl::memory;

memory::data_type dnnl_type(DType d) {
  return d == DType::bf16 ? memory::data_type::bf16 : memory::data_type::f32;
}

struct Key {
  int64_t batch, m, n, k;
  bool trans_a, trans_b;
  DType c_dtype;
  int bias;  // -1: none, else the DType's value
  float alpha, beta;
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    for (int64_t v : {k.batch, k.m, k.n, k.k}) mix(uint64_t(v));
    mix(uint64_t(k.trans_a) | uint64_t(k.trans_b) << 1 | uint64_t(k.c_dtype) << 2 |
        uint64_t(k.bias + 1) << 8);
    mix(std::bit_cast<uint32_t>(k.alpha) | uint64_t(std::bit_cast<uint32_t>(k.beta)) << 32);
    return h;
  }
};

struct Entry {
  dnnl::matmul primitive;
  memory::desc a, b, c, bias, scratchpad;
};

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A (batch, rows, cols) matrix; with `transposed` it is stored as (batch, cols, rows).
memory::desc matrix_desc(int64_t batch, int64_t rows, int64_t cols, bool transposed,
                         memory::data_type type) {
  const memory::dims strides =
      transposed ? memory::dims{rows * cols, 1, rows} : memory::dims{rows * cols, cols, 1};
  return memory::desc({batch, rows, cols}, type, strides);
}

std::shared_ptr<const Entry> create(const Key& key) {
  auto e = std::make_shared<Entry>();
  e->a = matrix_desc(key.batch, key.m, key.k, key.trans_a, memory::data_type::bf16);
  e->b = matrix_desc(key.batch, key.k, key.n, key.trans_b, memory::data_type::bf16);
  e->c = matrix_desc(key.batch, key.m, key.n, false, dnnl_type(key.c_dtype));
  if (key.bias >= 0) e->bias = matrix_desc(1, 1, key.n, false, dnnl_type(DType(key.bias)));
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (key.alpha != 1.0f) attr.set_output_scales(0, {key.alpha});
  if (key.beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(key.beta);  // c = product + beta * c_old
    attr.set_post_ops(ops);
  }
  dnnl::matmul::desc desc = key.bias >= 0 ? dnnl::matmul::desc(e->a, e->b, e->bias, e->c)
                                          : dnnl::matmul::desc(e->a, e->b, e->c);
  dnnl::matmul::primitive_desc pd(desc, attr, cpu_engine());
  e->scratchpad = pd.scratchpad_desc();
  e->primitive = dnnl::matmul(pd);
  return e;
}

std::shared_ptr<const Entry> lookup(const Key& key) {
  static std::mutex mutex;
  static std::unordered_map<Key, std::shared_ptr<const Entry>, KeyHash> cache;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  std::shared_ptr<const Entry> entry = create(key);  // outside the lock: it takes ~1 ms
  std::lock_guard<std::mutex> lock(mutex);
  // A long run with ever-new shapes must not grow without bound; training reuses a few dozen.
  if (cache.size() >= 4096) cache.clear();
  return cache.emplace(key, std::move(entry)).first->second;
}

// Per-thread scratchpad, grown on demand (64-byte aligned for the kernels' vector loads).
void* scratchpad(size_t bytes) {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<void, Free> buffer;
  thread_local size_t capacity = 0;
  if (bytes > capacity) {
    capacity = (bytes + 4095) / 4096 * 4096;
    buffer.reset(std::aligned_alloc(64, capacity));
    TESSERA_CHECK(buffer != nullptr, "gemm_bf16: cannot allocate ", capacity, " bytes");
  }
  return buffer.get();
}

// k = 0: the product is empty, so c = bias + beta * c (oneDNN would skip a zero-volume call).
void empty_product(const GemmShape& s, float beta, void* c, DType c_dtype, const void* bias,
                   DType bias_dtype) {
  for (int64_t i = 0; i < s.batch * s.m * s.n; ++i) {
    float v = 0.0f;
    if (bias) {
      const int64_t j = i % s.n;
      v = bias_dtype == DType::bf16 ? bf16_to_float(static_cast<const bf16*>(bias)[j])
                                    : static_cast<const float*>(bias)[j];
    }
    if (c_dtype == DType::bf16) {
      bf16* p = static_cast<bf16*>(c) + i;
      *p = float_to_bf16(v + (beta != 0.0f ? beta * bf16_to_float(*p) : 0.0f));
    } else {
      float* p = static_cast<float*>(c) + i;
      *p = v + (beta != 0.0f ? beta * *p : 0.0f);
    }
  }
}

}  // namespace

void gemm_bf16(const GemmShape& s, float alpha, const bf16* a, const bf16* b, float beta, void* c,
               DType c_dtype, const void* bias, DType bias_dtype) {
  TESSERA_CHECK(c_dtype == DType::f32 || c_dtype == DType::bf16,
                "gemm_bf16: output must be f32 or bf16");
  TESSERA_CHECK(!bias || alpha == 1.0f, "gemm_bf16: a bias needs alpha = 1");
  if (s.batch == 0 || s.m == 0 || s.n == 0) return;
  if (s.k == 0) return empty_product(s, beta, c, c_dtype, bias, bias_dtype);
  const Key key{s.batch, s.m, s.n, s.k, s.trans_a, s.trans_b, c_dtype, bias ? int(bias_dtype) : -1,
                alpha,   beta};
  std::shared_ptr<const Entry> e = lookup(key);
  dnnl::engine& engine = cpu_engine();
  thread_local dnnl::stream stream(engine);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, memory(e->a, engine, const_cast<bf16*>(a))},
      {DNNL_ARG_WEIGHTS, memory(e->b, engine, const_cast<bf16*>(b))},
      {DNNL_ARG_DST, memory(e->c, engine, c)},
  };
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(e->bias, engine, const_cast<void*>(bias)));
  if (size_t bytes = e->scratchpad.get_size()) {
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(e->scratchpad, engine, scratchpad(bytes)));
  }
  e->primitive.execute(stream, args);
  stream.wait();
}

}  // namespace tessera::ops::cpu
