#include "ops/layernorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/threads.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class LayerNormTest : public testing::DeviceTest {};

int64_t rows_of(const Shape& s) {
  return shape_numel(s) / s.back();
}

Tensor shifted(const Shape& shape, uint64_t stream, float offset) {
  Tensor t = testing::normal(shape, stream, 2.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] += offset;
  return t;
}

TEST_P(LayerNormTest, MatchesTorch) {
  const std::vector<Shape> shapes = {{1, 1},      {1, 7},     {7, 65},   {65, 127},
                                     {2, 3, 768}, {127, 768}, {3, 8192}, {130, 384}};
  const float eps = 1e-5f;
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < shapes.size(); ++c) {
    const int64_t C = shapes[c].back();
    // A mean offset far from zero exercises the variance's cancellation.
    in[case_key(c, "x")] = shifted(shapes[c], 10 * c, 3.0f);
    in[case_key(c, "weight")] = testing::uniform({C}, 10 * c + 1, 0.5f, 1.5f);
    in[case_key(c, "bias")] = testing::uniform({C}, 10 * c + 2);
    in[case_key(c, "dy")] = testing::normal(shapes[c], 10 * c + 3);
    in[case_key(c, "dweight0")] = testing::uniform({C}, 10 * c + 4);
    in[case_key(c, "dbias0")] = testing::uniform({C}, 10 * c + 5);
    attrs[case_key(c, "eps")] = "1e-5";
  }
  NamedTensors ref = testing::run_reference("layernorm", in, attrs);
  for (size_t c = 0; c < shapes.size(); ++c) {
    const Shape& s = shapes[c];
    const int64_t N = rows_of(s);
    const std::string what = shape_str(s);
    auto dev = [&](const char* name) { return to_device(in[case_key(c, name)], device()); };
    Tensor x = dev("x"), w = dev("weight"), b = dev("bias"), dy = dev("dy");
    Tensor y = Tensor::empty(s, DType::f32, device());
    Tensor mean = Tensor::empty({N}, DType::f32, device());
    Tensor rstd = Tensor::empty({N}, DType::f32, device());
    ops::layernorm_forward(x, w, b, y, mean, rstd, eps);
    EXPECT_ALL_CLOSE(y, ref[case_key(c, "y")], 1e-5, "y " + what);
    EXPECT_ALL_CLOSE(mean, ref[case_key(c, "mean")], 1e-5, "mean " + what);
    EXPECT_ALL_CLOSE(rstd, ref[case_key(c, "rstd")], 1e-5, "rstd " + what);

    Tensor dx = Tensor::empty(s, DType::f32, device());
    Tensor dw = dev("dweight0"), db = dev("dbias0");  // pre-filled: backward accumulates
    ops::layernorm_backward(dy, x, w, mean, rstd, dx, dw, db);
    if (s.back() > 1) {
      EXPECT_ALL_CLOSE(dx, ref[case_key(c, "dx")], 1e-5, "dx " + what);
    } else {
      // One column: dx is exactly 0 in exact arithmetic, so the relative measure has no scale;
      // bound the rounding residue by the size of the terms, rstd * |dy * w|.
      testing::Diff d = testing::diff(dx, ref[case_key(c, "dx")]);
      Tensor g = testing::to_cpu_f32(rstd);
      const double terms =
          double(g.data<float>()[0]) * std::abs(in[case_key(c, "dy")].data<float>()[0] *
                                                in[case_key(c, "weight")].data<float>()[0]);
      EXPECT_LE(d.max_abs, 1e-5 * terms) << "dx " << what;
    }
    EXPECT_ALL_CLOSE(dw, ref[case_key(c, "dweight")], 1e-5, "dweight " + what);
    EXPECT_ALL_CLOSE(db, ref[case_key(c, "dbias")], 1e-5, "dbias " + what);
  }
}

// The eps the models take from config (TransformerConfig.layer_norm_eps): HF ViT's 1e-12, timm's
// 1e-6, and a large one. Rows of small variance (std 1e-3, variance 1e-6) make eps matter: with
// 1e-12 against 1e-5 y would differ by about 5x, so a kernel ignoring eps fails.
TEST_P(LayerNormTest, MatchesTorchAtEachEps) {
  const Shape s = {33, 96};
  const int64_t C = s.back(), N = rows_of(s);
  for (const char* eps_text : {"1e-12", "1e-6", "0.1"}) {
    const float eps = std::stof(eps_text);
    NamedTensors in;
    in["x"] = testing::normal(s, 70, 1e-3f);
    in["weight"] = testing::uniform({C}, 71, 0.5f, 1.5f);
    in["bias"] = testing::uniform({C}, 72);
    in["dy"] = testing::normal(s, 73);
    in["dweight0"] = Tensor::zeros({C}, DType::f32);
    in["dbias0"] = Tensor::zeros({C}, DType::f32);
    NamedTensors ref = testing::run_reference("layernorm",
                                              {{case_key(0, "x"), in["x"]},
                                               {case_key(0, "weight"), in["weight"]},
                                               {case_key(0, "bias"), in["bias"]},
                                               {case_key(0, "dy"), in["dy"]},
                                               {case_key(0, "dweight0"), in["dweight0"]},
                                               {case_key(0, "dbias0"), in["dbias0"]}},
                                              {{case_key(0, "eps"), eps_text}});
    auto dev = [&](const char* name) { return to_device(in[name], device()); };
    Tensor y = Tensor::empty(s, DType::f32, device());
    Tensor mean = Tensor::empty({N}, DType::f32, device());
    Tensor rstd = Tensor::empty({N}, DType::f32, device());
    ops::layernorm_forward(dev("x"), dev("weight"), dev("bias"), y, mean, rstd, eps);
    const std::string what = std::string("eps ") + eps_text;
    EXPECT_ALL_CLOSE(y, ref[case_key(0, "y")], 1e-5, "y " + what);
    EXPECT_ALL_CLOSE(rstd, ref[case_key(0, "rstd")], 1e-5, "rstd " + what);
    Tensor dx = Tensor::empty(s, DType::f32, device());
    Tensor dw = dev("dweight0"), db = dev("dbias0");
    ops::layernorm_backward(dev("dy"), dev("x"), dev("weight"), mean, rstd, dx, dw, db);
    EXPECT_ALL_CLOSE(dx, ref[case_key(0, "dx")], 1e-5, "dx " + what);
    EXPECT_ALL_CLOSE(dw, ref[case_key(0, "dweight")], 1e-5, "dweight " + what);
  }
}

// sum(y * r) in double: the scalar objective whose gradient backward computes with dy = r.
double objective(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& r,
                 Device device) {
  const int64_t C = x.dim(-1), N = x.numel() / C;
  Tensor y = Tensor::empty(x.shape(), DType::f32, device);
  Tensor mean = Tensor::empty({N}, DType::f32, device),
         rstd = Tensor::empty({N}, DType::f32, device);
  ops::layernorm_forward(to_device(x, device), to_device(w, device), to_device(b, device), y, mean,
                         rstd);
  Tensor yh = testing::to_cpu_f32(y);
  double s = 0;
  for (int64_t i = 0; i < yh.numel(); ++i) s += double(yh.data<float>()[i]) * r.data<float>()[i];
  return s;
}

// a + h * v, elementwise (CPU).
Tensor axpy(const Tensor& a, float h, const Tensor& v) {
  Tensor out = Tensor::empty(a.shape(), DType::f32);
  for (int64_t i = 0; i < a.numel(); ++i)
    out.data<float>()[i] = a.data<float>()[i] + h * v.data<float>()[i];
  return out;
}

double dot(const Tensor& a, const Tensor& b) {
  Tensor ah = testing::to_cpu_f32(a);
  double s = 0;
  for (int64_t i = 0; i < ah.numel(); ++i) s += double(ah.data<float>()[i]) * b.data<float>()[i];
  return s;
}

// Directional derivative along a random direction (x, weight, bias together): central difference
// of the f32 forward against the analytic backward.
TEST_P(LayerNormTest, FiniteDifference) {
  for (const Shape& s : std::vector<Shape>{{7, 65}, {3, 127}, {1, 7}}) {
    const int64_t C = s.back(), N = rows_of(s);
    Tensor x = shifted(s, 1, 0.5f), w = testing::uniform({C}, 2, 0.5f, 1.5f),
           b = testing::uniform({C}, 3), r = testing::normal(s, 4);
    Tensor vx = testing::uniform(s, 5), vw = testing::uniform({C}, 6),
           vb = testing::uniform({C}, 7);
    const float h = 1e-2f;
    const double fd = (objective(axpy(x, h, vx), axpy(w, h, vw), axpy(b, h, vb), r, device()) -
                       objective(axpy(x, -h, vx), axpy(w, -h, vw), axpy(b, -h, vb), r, device())) /
                      (2.0 * h);
    Tensor xd = to_device(x, device()), wd = to_device(w, device());
    Tensor y = Tensor::empty(s, DType::f32, device());
    Tensor mean = Tensor::empty({N}, DType::f32, device()),
           rstd = Tensor::empty({N}, DType::f32, device());
    ops::layernorm_forward(xd, wd, to_device(b, device()), y, mean, rstd);
    Tensor dx = Tensor::empty(s, DType::f32, device());
    Tensor dw = Tensor::zeros({C}, DType::f32, device()),
           db = Tensor::zeros({C}, DType::f32, device());
    ops::layernorm_backward(to_device(r, device()), xd, wd, mean, rstd, dx, dw, db);
    const double analytic = dot(dx, vx) + dot(dw, vw) + dot(db, vb);
    EXPECT_NEAR(fd, analytic, 1e-3 * std::abs(analytic)) << shape_str(s);
  }
}

// The parameter-grad reduction runs in fixed row chunks: 1 thread and all threads agree bitwise.
// CPU only (thread count is a CPU notion).
TEST(LayerNormCpu, BackwardSameForAnyThreadCount) {
  const Shape s = {1000, 96};
  Tensor x = testing::normal(s, 1), w = testing::uniform({96}, 2), b = testing::uniform({96}, 3),
         dy = testing::normal(s, 4);
  auto run = [&](int threads) {
    const int saved = num_threads();
    set_num_threads(threads);
    Tensor y = Tensor::empty(s, DType::f32), mean = Tensor::empty({1000}, DType::f32),
           rstd = Tensor::empty({1000}, DType::f32), dx = Tensor::empty(s, DType::f32),
           dw = Tensor::zeros({96}, DType::f32), db = Tensor::zeros({96}, DType::f32);
    ops::layernorm_forward(x, w, b, y, mean, rstd);
    ops::layernorm_backward(dy, x, w, mean, rstd, dx, dw, db);
    set_num_threads(saved);
    return std::vector<Tensor>{y, dx, dw, db};
  };
  std::vector<Tensor> one = run(1), many = run(std::max(2, num_threads()));
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(std::memcmp(one[i].raw_data(), many[i].raw_data(), one[i].nbytes()), 0) << i;
  }
}

TEST_P(LayerNormTest, BadArgumentsNameOpAndShapes) {
  Tensor x = Tensor::zeros({4, 64}, DType::f32, device());
  Tensor w = Tensor::zeros({63}, DType::f32, device()),
         b = Tensor::zeros({64}, DType::f32, device());
  Tensor y = Tensor::zeros({4, 64}, DType::f32, device());
  Tensor m = Tensor::zeros({4}, DType::f32, device()), r = Tensor::zeros({4}, DType::f32, device());
  try {
    ops::layernorm_forward(x, w, b, y, m, r);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "layernorm_forward: weight must be f32(64), got f32(63) " + device().str());
  }
  Tensor m3 = Tensor::zeros({3}, DType::f32, device());
  EXPECT_THROW(ops::layernorm_forward(x, b, b, y, m3, r), Error);
  Tensor dx = Tensor::zeros({4, 65}, DType::f32, device());
  EXPECT_THROW(ops::layernorm_backward(y, x, b, m, r, dx, b, b), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(LayerNormTest);

}  // namespace
}  // namespace tessera
