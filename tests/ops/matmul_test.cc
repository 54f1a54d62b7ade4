#include "ops/matmul.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "core/bf16.h"
#include "core/threads.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

// f32 tensor whose values are rounded to bf16 (core/bf16.h's scalar conversion, independent of
// ops::convert), so that the reference multiplies exactly what the bf16 kernel sees.
Tensor rounded(const Tensor& t) {
  Tensor r = Tensor::empty(t.shape(), DType::f32);
  for (int64_t i = 0; i < t.numel(); ++i) {
    r.data<float>()[i] = bf16_to_float(float_to_bf16(t.data<float>()[i]));
  }
  return r;
}

// A copy of the f32 CPU tensor `t` in `dtype` (f32 or bf16) on `device`.
Tensor as(const Tensor& t, DType dtype, Device device) {
  if (dtype == DType::f32) return to_device(t, device);
  Tensor h = Tensor::empty(t.shape(), DType::bf16);
  for (int64_t i = 0; i < t.numel(); ++i) h.data<bf16>()[i] = float_to_bf16(t.data<float>()[i]);
  return to_device(h, device);
}

struct MatmulCase {
  int64_t batch;  // 0: 2-D
  int64_t m, n, k;
  bool trans_a, trans_b;
  float alpha, beta;
  DType operands, out;
};

struct LinearCase {
  Shape x;  // (..., in)
  int64_t out;
  bool bias;
  DType operands = DType::f32;
  DType y = DType::f32, bias_dtype = DType::f32, dy = DType::f32, dx = DType::f32;
  bool with_dx = true;
};

Shape matrix(int64_t batch, int64_t rows, int64_t cols) {
  return batch ? Shape{batch, rows, cols} : Shape{rows, cols};
}

// Every case of the suite, and the reference computed for all of them in one Python run.
struct Suite {
  std::vector<MatmulCase> matmuls;
  std::vector<LinearCase> linears;
  int convert_case = -1;
  NamedTensors in, ref;
};

const Suite& suite() {
  static const Suite s = [] {
    Suite s;
    const int64_t sizes[][3] = {{1, 1, 1},      {7, 65, 127}, {65, 7, 1},
                                {127, 127, 65}, {1, 512, 7},  {520, 513, 130}};
    const float alphas[] = {1.0f, 0.5f, -1.25f}, betas[] = {0.0f, 1.0f, -0.25f};
    int v = 0;
    for (auto& mnk : sizes) {
      for (int batch : {0, 3}) {
        for (int t = 0; t < 4; ++t, ++v) {
          s.matmuls.push_back({batch, mnk[0], mnk[1], mnk[2], bool(t & 1), bool(t & 2),
                               alphas[v % 3], betas[(v / 2) % 3], DType::f32, DType::f32});
        }
      }
    }
    const int64_t bf16_sizes[][3] = {{7, 65, 127}, {127, 1, 65}, {513, 127, 520}};
    for (auto& mnk : bf16_sizes) {
      for (int t = 0; t < 4; ++t, ++v) {
        s.matmuls.push_back({t % 2 ? 2 : 0, mnk[0], mnk[1], mnk[2], bool(t & 1), bool(t & 2),
                             t == 3 ? 0.5f : 1.0f, t >= 2 ? 1.0f : 0.0f, DType::bf16,
                             t % 3 ? DType::f32 : DType::bf16});
      }
    }
    const DType f = DType::f32, h = DType::bf16;
    s.linears = {
        {{7, 65}, 127, true},
        {{3, 5, 127}, 7, false},
        {{1, 1}, 1, true},
        {{2, 65, 64}, 129, true, f, f, f, f, f, /*with_dx=*/false},
        {{4, 130, 384}, 65, true},
        {{3, 7, 65}, 127, true, h, f, f, h, h},
        {{65, 127}, 7, true, h, h, h, f, f},
        {{2, 64, 96}, 65, false, h, f, f, f, h, /*with_dx=*/false},
    };

    std::map<std::string, std::string> attrs;
    int c = 0;
    for (const MatmulCase& m : s.matmuls) {
      Tensor a =
          testing::uniform(matrix(m.batch, m.trans_a ? m.k : m.m, m.trans_a ? m.m : m.k), 3 * c);
      Tensor b = testing::uniform(matrix(m.batch, m.trans_b ? m.n : m.k, m.trans_b ? m.k : m.n),
                                  3 * c + 1);
      Tensor out0 = testing::uniform(matrix(m.batch, m.m, m.n), 3 * c + 2);
      const bool h16 = m.operands == DType::bf16;
      s.in[case_key(c, "a")] = h16 ? rounded(a) : a;
      s.in[case_key(c, "b")] = h16 ? rounded(b) : b;
      s.in[case_key(c, "out0")] = m.out == DType::bf16 ? rounded(out0) : out0;
      attrs[case_key(c, "kind")] = "matmul";
      attrs[case_key(c, "trans_a")] = m.trans_a ? "1" : "0";
      attrs[case_key(c, "trans_b")] = m.trans_b ? "1" : "0";
      attrs[case_key(c, "alpha")] = std::to_string(m.alpha);
      attrs[case_key(c, "beta")] = std::to_string(m.beta);
      ++c;
    }
    for (const LinearCase& l : s.linears) {
      const int64_t in_f = l.x.back();
      Shape y_shape = l.x;
      y_shape.back() = l.out;
      const bool h16 = l.operands == DType::bf16;
      auto maybe_round = [&](Tensor t) { return h16 ? rounded(t) : t; };
      s.in[case_key(c, "x")] = maybe_round(testing::uniform(l.x, 1000 + 6 * c));
      s.in[case_key(c, "w")] = maybe_round(testing::normal({l.out, in_f}, 1001 + 6 * c, 0.1f));
      if (l.bias) {
        Tensor b = testing::uniform({l.out}, 1002 + 6 * c);
        s.in[case_key(c, "b")] = l.bias_dtype == DType::bf16 ? rounded(b) : b;
        s.in[case_key(c, "db0")] = testing::uniform({l.out}, 1003 + 6 * c);
      }
      s.in[case_key(c, "dy")] = maybe_round(testing::normal(y_shape, 1004 + 6 * c));
      s.in[case_key(c, "dw0")] = testing::uniform({l.out, in_f}, 1005 + 6 * c);
      attrs[case_key(c, "kind")] = "linear";
      ++c;
    }
    // Conversion: values across magnitudes (normal, subnormal, huge) plus exact ties, which
    // round to even in both directions.
    Tensor src = testing::normal({4096}, 5000);
    float* p = src.data<float>();
    for (int i = 0; i < 4096; i += 4) p[i] *= std::ldexp(1.0f, (i / 4) % 200 - 100);
    const uint32_t ties[] = {0x3f808000u, 0x3f818000u, 0xbf808000u, 0xbf818000u,
                             0x00008000u, 0x00018000u, 0x7f7f7fffu, 0x0000ffffu};
    for (int i = 0; i < 8; ++i) p[1 + 4 * i] = std::bit_cast<float>(ties[i]);
    s.convert_case = c;
    s.in[case_key(c, "src")] = src;
    attrs[case_key(c, "kind")] = "convert";
    s.ref = testing::run_reference("matmul", s.in, attrs);
    return s;
  }();
  return s;
}

class MatmulTest : public testing::DeviceTest {};

TEST_P(MatmulTest, MatmulMatchesTorch) {
  const Suite& s = suite();
  // Also with one thread: the batch-parallel and threaded-sgemm paths must both be right.
  const int threads = num_threads();
  for (int t : {threads, 1}) {
    set_num_threads(t);
    for (size_t c = 0; c < s.matmuls.size(); ++c) {
      const MatmulCase& m = s.matmuls[c];
      if (t == 1 && m.operands != DType::f32) continue;
      Tensor a = as(s.in.at(case_key(c, "a")), m.operands, device());
      Tensor b = as(s.in.at(case_key(c, "b")), m.operands, device());
      Tensor out = as(s.in.at(case_key(c, "out0")), m.out, device());
      ops::matmul(a, b, out, m.trans_a, m.trans_b, m.alpha, m.beta);
      const double tol = m.out == DType::bf16 ? 1e-2 : m.operands == DType::bf16 ? 1e-4 : 1e-5;
      EXPECT_ALL_CLOSE(out, s.ref.at(case_key(c, "out")), tol,
                       "matmul " + a.describe() + " x " + b.describe() + " -> " + out.describe() +
                           " ta=" + std::to_string(m.trans_a) + " tb=" + std::to_string(m.trans_b) +
                           " alpha=" + std::to_string(m.alpha) + " beta=" + std::to_string(m.beta) +
                           " threads=" + std::to_string(t));
    }
  }
  set_num_threads(threads);
}

TEST_P(MatmulTest, LinearForwardBackwardMatchTorch) {
  const Suite& s = suite();
  for (size_t i = 0; i < s.linears.size(); ++i) {
    const LinearCase& l = s.linears[i];
    const int c = int(s.matmuls.size() + i);
    auto ref = [&](const char* name) { return s.ref.at(case_key(c, name)); };
    Tensor x = as(s.in.at(case_key(c, "x")), l.operands, device());
    Tensor w = as(s.in.at(case_key(c, "w")), l.operands, device());
    Tensor b = l.bias ? as(s.in.at(case_key(c, "b")), l.bias_dtype, device()) : Tensor();
    Tensor dy = as(s.in.at(case_key(c, "dy")), l.dy, device());
    Shape y_shape = l.x;
    y_shape.back() = l.out;
    Tensor y = Tensor::empty(y_shape, l.y, device());
    const std::string what = "linear x " + x.describe() + " w " + w.describe() +
                             (l.bias ? " bias " + b.describe() : " no bias");
    const bool h16 = l.operands == DType::bf16;
    ops::linear_forward(x, w, b, y);
    EXPECT_ALL_CLOSE(y, ref("y"), l.y == DType::bf16 ? 1e-2 : h16 ? 1e-4 : 1e-5, what + ": y");

    // Gradients: dx written over garbage, dweight and dbias accumulate onto pre-filled values.
    Tensor dx = l.with_dx ? as(testing::uniform(l.x, 77), l.dx, device()) : Tensor();
    Tensor dw = to_device(s.in.at(case_key(c, "dw0")), device());
    Tensor db = l.bias ? to_device(s.in.at(case_key(c, "db0")), device()) : Tensor();
    ops::linear_backward(dy, x, w, dx, dw, db);
    if (l.with_dx) {
      EXPECT_ALL_CLOSE(dx, ref("dx"),
                       l.dx == DType::bf16 ? 1e-2
                       : h16               ? 1e-4
                                           : 1e-5,
                       what + ": dx");
    }
    EXPECT_ALL_CLOSE(dw, ref("dw"), h16 ? 1e-4 : 1e-5, what + ": dweight (+=)");
    if (l.bias) {
      EXPECT_ALL_CLOSE(db, ref("db"), 1e-5, what + ": dbias (+=)");
    }
  }
}

TEST_P(MatmulTest, ConvertRoundsLikeTorch) {
  const Suite& s = suite();
  const Tensor& src_host = s.in.at(case_key(s.convert_case, "src"));
  Tensor src = to_device(src_host, device());
  Tensor h = Tensor::empty({64, 64}, DType::bf16, device());  // shapes may differ, numel not
  ops::convert(src, h);
  Tensor rounded_ref = s.ref.at(case_key(s.convert_case, "rounded"));
  EXPECT_ALL_CLOSE(h.view({4096}), rounded_ref, 0.0, "convert f32 -> bf16 vs torch");
  Tensor back = Tensor::empty({4096}, DType::f32, device());
  ops::convert(h, back);  // bf16 -> f32 is exact
  EXPECT_ALL_CLOSE(back, rounded_ref, 0.0, "convert bf16 -> f32");

  // Bitwise against core/bf16.h on arbitrary bit patterns: NaNs, infinities, overflow to inf.
  const int64_t n = 1 << 16;
  Tensor bits = testing::uniform({n}, 5001, 0.0f, 4294967296.0f);
  Tensor patterns = Tensor::empty({n}, DType::f32);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u = uint32_t(double(bits.data<float>()[i])) ^ uint32_t(i * 2654435761u);
    if (i % 7 == 0) u |= 0x7f800000u;  // many infinities and NaNs
    patterns.data<float>()[i] = std::bit_cast<float>(u);
  }
  Tensor out = Tensor::empty({n}, DType::bf16, device());
  ops::convert(to_device(patterns, device()), out);
  Tensor host = to_device(out, Device::cpu());
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n; ++i) {
    mismatches += host.data<bf16>()[i].bits != float_to_bf16(patterns.data<float>()[i]).bits;
  }
  EXPECT_EQ(mismatches, 0);
}

// The bf16 primitive cache is shared: concurrent calls from an OpenMP region (each with its own
// scratchpad) must give what one call at a time gives.
// CPU only (host threads drive CPU kernels only).
TEST(MatmulCpu, Bf16ConcurrentCallsAgree) {
  const int calls = 8;
  std::vector<Tensor> a, b, alone, together;
  for (int i = 0; i < calls; ++i) {
    a.push_back(as(testing::uniform({65, 130}, 9000 + 2 * i), DType::bf16, Device::cpu()));
    b.push_back(as(testing::uniform({127, 130}, 9001 + 2 * i), DType::bf16, Device::cpu()));
    alone.push_back(Tensor::zeros({65, 127}, DType::f32, Device::cpu()));
    together.push_back(Tensor::zeros({65, 127}, DType::f32, Device::cpu()));
    ops::matmul(a[i], b[i], alone[i], false, true);
  }
#pragma omp parallel for num_threads(4) schedule(static, 1)
  for (int i = 0; i < calls; ++i) ops::matmul(a[i], b[i], together[i], false, true);
  for (int i = 0; i < calls; ++i) {
    EXPECT_ALL_CLOSE(together[i], alone[i], 1e-6, "concurrent call " + std::to_string(i));
  }
}

// k = 0: the product is empty, so out = beta * out (f32) and out = bias (linear).
TEST_P(MatmulTest, EmptyInnerDimension) {
  for (DType dt : {DType::f32, DType::bf16}) {
    Tensor a = Tensor::zeros({2, 3, 0}, dt, device()), b = Tensor::zeros({2, 0, 4}, dt, device());
    Tensor out0 = testing::uniform({2, 3, 4}, 123);
    Tensor out = to_device(out0, device());
    ops::matmul(a, b, out, false, false, 1.0f, 0.5f);
    Tensor expect = Tensor::empty({2, 3, 4}, DType::f32);
    for (int64_t i = 0; i < 24; ++i) expect.data<float>()[i] = 0.5f * out0.data<float>()[i];
    EXPECT_ALL_CLOSE(out, expect, 0.0, std::string("k = 0 ") + dtype_name(dt));
  }
}

TEST_P(MatmulTest, BadArgumentsNameOpAndShapes) {
  Tensor a = Tensor::zeros({4, 3}, DType::f32, device());
  Tensor b = Tensor::zeros({5, 2}, DType::f32, device());
  Tensor out = Tensor::zeros({4, 2}, DType::f32, device());
  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string dev = device().str();
  EXPECT_EQ(
      message([&] { ops::matmul(a, b, out); }),
      "matmul: inner dimensions differ (3 vs 5): a f32(4, 3) " + dev + " and b f32(5, 2) " + dev);
  Tensor b16 = Tensor::zeros({3, 2}, DType::bf16, device());
  EXPECT_EQ(message([&] { ops::matmul(a, b16, out); }),
            "matmul: b must be f32, got bf16(3, 2) " + dev);
  EXPECT_EQ(message([&] { ops::matmul(a, Tensor(), out); }), "matmul: b is undefined");
  Tensor w = Tensor::zeros({6, 3}, DType::f32, device());
  Tensor y = Tensor::zeros({4, 5}, DType::f32, device());
  EXPECT_EQ(message([&] { ops::linear_forward(a, w, Tensor(), y); }),
            "linear_forward: y must be f32(4, 6), got f32(4, 5) " + dev);
  EXPECT_EQ(message([&] { ops::linear_forward(a, Tensor(), Tensor(), y); }),
            "linear_forward: weight is undefined");
  Tensor dy = Tensor::zeros({4, 6}, DType::f32, device());
  Tensor dw16 = Tensor::zeros({6, 3}, DType::bf16, device());
  EXPECT_THROW(ops::linear_backward(dy, a, w, a, dw16, Tensor()), Error);
  Tensor a16 = Tensor::zeros({4, 3}, DType::bf16, device());
  EXPECT_THROW(ops::linear_forward(a16, w, Tensor(), y), Error);  // mixed operand dtypes
  EXPECT_THROW(ops::matmul(a16, b16, Tensor::zeros({4, 2}, DType::i32, device())), Error);
  EXPECT_EQ(message([&] { ops::convert(a, Tensor::zeros({5}, DType::bf16, device())); }),
            "convert: dst bf16(5) " + dev + " must have 12 elements like src f32(4, 3) " + dev);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(MatmulTest);

}  // namespace
}  // namespace tessera
