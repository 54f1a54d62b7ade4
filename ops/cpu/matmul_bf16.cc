// bf16 GEMM (f32 accumulation) through the oneDNN matmul primitive. On CPUs with AVX512-BF16 it
// picks the brgemm kernel (vdpbf16ps): about 2x the f32 sgemm rate per core on a Zen 4, and it
// accepts every transpose as memory strides without a copy. With AVX-512 but no AVX512-BF16,
// oneDNN emulates the bf16 dot products.
//
// Without AVX-512, oneDNN 2.6 has no bf16 matmul at all (creating one fails with "could not
// create a primitive descriptor iterator"). There the operands are widened to f32 (exact) and
// multiplied by the f32 sgemm, the epilogue (bias, beta) applied in f32 and the result rounded
// once to c's dtype: the same arithmetic as oneDNN's (f32 products and sums of bf16 values), at
// the f32 rate plus one pass over each operand. Which path runs is decided once, by asking
// oneDNN for a small primitive, and printed at start-up (bf16_gemm_path()).
//
// Creating a primitive costs about a millisecond, so primitives are cached by everything they
// were created for (shape, transposes, dtypes, alpha, beta, bias). The cache is shared by all
// threads behind a mutex; a cached primitive is executed concurrently from several threads, which
// oneDNN allows because each call brings its own scratchpad (scratchpad_mode::user, one buffer
// per thread) instead of the library's shared one.
#include <algorithm>
#include <bit>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "dnnl.hpp"
#include "ops/cpu/isa.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/onednn_status.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

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

// oneDNN's matmul primitive descriptor for a key; throws dnnl::error when oneDNN has no
// implementation for it on this CPU.
dnnl::matmul::primitive_desc primitive_desc(const Key& key, Entry* e) {
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
  return dnnl::matmul::primitive_desc(desc, attr, cpu_engine());
}

std::shared_ptr<const Entry> create(const Key& key) {
  auto e = std::make_shared<Entry>();
  try {
    dnnl::matmul::primitive_desc pd = primitive_desc(key, e.get());
    e->scratchpad = pd.scratchpad_desc();
    e->primitive = dnnl::matmul(pd);
  } catch (const dnnl::error& err) {
    const GemmShape shape{key.batch, key.m, key.n, key.k, key.trans_a, key.trans_b};
    throw_onednn_error(err.status, absl::StrCat("matmul primitive creation (", err.what(), ")"),
                       gemm_description(shape, "bf16"));
  }
  return e;
}

struct Path {
  bool onednn = false;
  std::string summary;
};

// Asks oneDNN once for a small bf16 matmul: its implementation name says which kernel the real
// shapes will get (e.g. "brg:avx512_core_bf16"); a refusal selects the f32-compute path.
Path detect_path() {
  cpu_isa();  // applies TESSERA_CPU_ISA's cap to oneDNN before its first primitive
  const Key key{1, 64, 64, 64, false, false, DType::f32, -1, 1.0f, 0.0f};
  Entry e;
  try {
    dnnl::matmul::primitive_desc pd = primitive_desc(key, &e);
    return {true, absl::StrCat("oneDNN ", pd.impl_info_str())};
  } catch (const dnnl::error&) {
    return {false, "f32 sgemm on bf16 operands (oneDNN has no bf16 matmul on this CPU path)"};
  }
}

const Path& path() {
  static const Path p = detect_path();
  return p;
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
    if (buffer == nullptr) capacity = 0;  // the caller reports it, with the shapes
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

// out (rows, n) = product + bias[j] + beta * out_old, rounded to out's dtype; bias may be null.
TESSERA_CPU_KERNEL(void, epilogue_rows,
                   (const float* product, const void* bias, DType bias_dtype, float beta, void* out,
                    DType out_dtype, int64_t r0, int64_t r1, int64_t n),
                   (product, bias, bias_dtype, beta, out, out_dtype, r0, r1, n)) {
  const float* bias_f32 = bias_dtype == DType::f32 ? static_cast<const float*>(bias) : nullptr;
  const bf16* bias_bf16 = bias_dtype == DType::bf16 ? static_cast<const bf16*>(bias) : nullptr;
  for (int64_t r = r0; r < r1; ++r) {
    const float* p = product + r * n;
    if (out_dtype == DType::f32) {
      float* o = static_cast<float*>(out) + r * n;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        const float b = bias_f32 ? bias_f32[j] : bias_bf16 ? bf16_to_float(bias_bf16[j]) : 0.0f;
        o[j] = p[j] + b + (beta != 0.0f ? beta * o[j] : 0.0f);
      }
    } else {
      bf16* o = static_cast<bf16*>(out) + r * n;
      for (int64_t j = 0; j < n; ++j) {
        const float b = bias_f32 ? bias_f32[j] : bias_bf16 ? bf16_to_float(bias_bf16[j]) : 0.0f;
        o[j] = float_to_bf16(p[j] + b + (beta != 0.0f ? beta * bf16_to_float(o[j]) : 0.0f));
      }
    }
  }
}

void gemm_bf16_via_f32(const GemmShape& s, float alpha, const bf16* a, const bf16* b, float beta,
                       void* c, DType c_dtype, const void* bias, DType bias_dtype) {
  const int64_t na = s.batch * s.m * s.k, nb = s.batch * s.k * s.n, nc = s.batch * s.m * s.n;
  const bool direct = c_dtype == DType::f32 && bias == nullptr;  // sgemm writes c itself
  // Per thread: concurrent calls (Bf16ConcurrentCallsAgree) must not share buffers.
  thread_local std::vector<float> buffer;
  const size_t need = size_t(na + nb + (direct ? 0 : nc));
  if (buffer.size() < need) {
    try {
      buffer.resize(need);
    } catch (const std::bad_alloc&) {
      throw_error(absl::StrCat("out of memory allocating ", need * sizeof(float),
                               " bytes for the f32 copies of the ", gemm_description(s, "bf16")));
    }
  }
  float* fa = buffer.data();
  float* fb = fa + na;
  convert(a, fa, na);
  convert(b, fb, nb);
  if (direct) return gemm_f32(s, alpha, fa, fb, beta, static_cast<float*>(c));
  float* product = fb + nb;
  gemm_f32(s, alpha, fa, fb, 0.0f, product);
  const int64_t rows = s.batch * s.m;
  const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, s.n));
  parallel_chunks(rows, grain, [&](int64_t r0, int64_t r1) {
    epilogue_rows(product, bias, bias_dtype, beta, c, c_dtype, r0, r1, s.n);
  });
}

}  // namespace

std::string bf16_gemm_path() {
  return path().summary;
}

void gemm_bf16(const GemmShape& s, float alpha, const bf16* a, const bf16* b, float beta, void* c,
               DType c_dtype, const void* bias, DType bias_dtype) {
  TESSERA_CHECK(c_dtype == DType::f32 || c_dtype == DType::bf16,
                "gemm_bf16: output must be f32 or bf16");
  TESSERA_CHECK(!bias || alpha == 1.0f, "gemm_bf16: a bias needs alpha = 1");
  if (s.batch == 0 || s.m == 0 || s.n == 0) return;
  if (s.k == 0) return empty_product(s, beta, c, c_dtype, bias, bias_dtype);
  if (!path().onednn) return gemm_bf16_via_f32(s, alpha, a, b, beta, c, c_dtype, bias, bias_dtype);
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
    void* pad = scratchpad(bytes);
    TESSERA_CHECK(pad != nullptr, "out of memory allocating oneDNN's scratchpad of ", bytes,
                  " bytes for the ", gemm_description(s, "bf16"));
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(e->scratchpad, engine, pad));
  }
  try {
    e->primitive.execute(stream, args);
    stream.wait();
  } catch (const dnnl::error& err) {
    throw_onednn_error(err.status, absl::StrCat("matmul primitive (", err.what(), ")"),
                       gemm_description(s, "bf16"));
  }
}

}  // namespace tessera::ops::cpu
