#include "models/distillation.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/elementwise.h"

namespace tessera::models {
namespace {

// log softmax(x / T) of one row, in double.
void log_softmax(const float* x, int64_t C, double T, std::vector<double>& out) {
  double m = -INFINITY;
  for (int64_t j = 0; j < C; ++j) m = std::max(m, double(x[j]) / T);
  double s = 0;
  for (int64_t j = 0; j < C; ++j) s += std::exp(double(x[j]) / T - m);
  const double lse = m + std::log(s);
  for (int64_t j = 0; j < C; ++j) out[j] = double(x[j]) / T - lse;
}

}  // namespace

double distillation_term(const Tensor& student, const Tensor& teacher, float temperature,
                         float scale, const Tensor& dstudent) {
  TESSERA_CHECK(student.ndim() == 2 && student.dtype() == DType::f32 &&
                    teacher.shape() == student.shape() && teacher.dtype() == DType::f32,
                "distillation: student logits ", student.describe(), " and teacher logits ",
                teacher.describe(), " must be the same (N, C) f32");
  TESSERA_CHECK(temperature > 0, "distillation: temperature must be > 0, got ", temperature);
  const Tensor s = to_device(student, Device::cpu()), t = to_device(teacher, Device::cpu());
  const int64_t N = s.dim(0), C = s.dim(1);
  const double T = temperature;
  std::vector<double> ls(C), lt(C);
  Tensor grad = Tensor::empty({N, C}, DType::f32);
  double total = 0;
  for (int64_t i = 0; i < N; ++i) {
    log_softmax(s.data<float>() + i * C, C, T, ls);
    log_softmax(t.data<float>() + i * C, C, T, lt);
    for (int64_t j = 0; j < C; ++j) {
      const double q = std::exp(lt[j]);
      total += q * (lt[j] - ls[j]);
      grad.data<float>()[i * C + j] = float(scale * T * (std::exp(ls[j]) - q) / double(N));
    }
  }
  if (dstudent.defined()) {
    TESSERA_CHECK(dstudent.shape() == student.shape(), "distillation: dstudent ",
                  dstudent.describe(), " must match the student logits ", student.describe());
    ops::add_inplace(dstudent,
                     dstudent.device().is_cpu() ? grad : to_device(grad, dstudent.device()));
  }
  return N > 0 ? T * T * total / double(N) : 0.0;
}

double sigmoid_distillation_term(const Tensor& student, const Tensor& teacher, float student_bias,
                                 float teacher_bias, float temperature, float scale,
                                 const Tensor& dstudent) {
  TESSERA_CHECK(student.ndim() == 2 && student.dtype() == DType::f32 &&
                    teacher.shape() == student.shape() && teacher.dtype() == DType::f32,
                "sigmoid distillation: student logits ", student.describe(), " and teacher logits ",
                teacher.describe(), " must be the same (N, C) f32");
  TESSERA_CHECK(temperature > 0, "sigmoid distillation: temperature must be > 0, got ",
                temperature);
  const Tensor s = to_device(student, Device::cpu()), t = to_device(teacher, Device::cpu());
  const int64_t N = s.dim(0), C = s.dim(1), n = N * C;
  const double T = temperature;
  // log sigmoid(x) = -softplus(-x), log(1 - sigmoid(x)) = -softplus(x), stable for any |x|.
  auto softplus = [](double x) {
    return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  };
  Tensor grad = Tensor::empty({N, C}, DType::f32);
  double total = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double zs = (double(s.data<float>()[k]) + student_bias) / T;
    const double zt = (double(t.data<float>()[k]) + teacher_bias) / T;
    const double p = 1 / (1 + std::exp(-zt)), q = 1 / (1 + std::exp(-zs));
    total += p * (softplus(-zs) - softplus(-zt)) + (1 - p) * (softplus(zs) - softplus(zt));
    grad.data<float>()[k] = float(scale * T * (q - p) / double(N));
  }
  if (dstudent.defined()) {
    TESSERA_CHECK(dstudent.shape() == student.shape(), "sigmoid distillation: dstudent ",
                  dstudent.describe(), " must match the student logits ", student.describe());
    ops::add_inplace(dstudent,
                     dstudent.device().is_cpu() ? grad : to_device(grad, dstudent.device()));
  }
  return N > 0 ? T * T * total / double(N) : 0.0;
}

double vocab_distillation_term(const Tensor& student, const Tensor& teacher, const Tensor& targets,
                               int64_t begin, int64_t vocab, int ignore_index, float temperature,
                               float scale, const Tensor& dstudent,
                               const HostAllReduce& all_reduce) {
  TESSERA_CHECK(student.ndim() == 2 && student.dtype() == DType::f32 && teacher.ndim() == 2 &&
                    teacher.dtype() == DType::f32 && teacher.dim(0) == student.dim(0),
                "distillation: student logits ", student.describe(), " and teacher logits ",
                teacher.describe(), " must be (N, V_local) f32 with the same N");
  TESSERA_CHECK(targets.numel() == student.dim(0) && targets.dtype() == DType::i32,
                "distillation: targets ", targets.describe(), " must be (", student.dim(0),
                ") i32");
  TESSERA_CHECK(temperature > 0, "distillation: temperature must be > 0, got ", temperature);
  const int64_t N = student.dim(0), Vs = student.dim(1), Vt = teacher.dim(1);
  // This rank's real columns: both slices must hold them (the padding may differ).
  const int64_t cols = std::max<int64_t>(0, std::min(vocab - begin, Vs));
  TESSERA_CHECK(Vt >= cols && (Vt == Vs || begin == 0),
                "distillation: the teacher's vocabulary slice ", teacher.describe(),
                " does not cover the student's ", student.describe(), " from column ", begin,
                " (under tensor parallelism both must have the same padded vocabulary)");
  const Tensor s = to_device(student, Device::cpu()), t = to_device(teacher, Device::cpu());
  const Tensor y = to_device(targets, Device::cpu());
  const float* sp = s.data<float>();
  const float* tp = t.data<float>();
  const double T = temperature;
  // Row maxima of teacher / T and student / T over this slice, then over the group.
  Tensor maxes = Tensor::empty({2, N}, DType::f32);
  float* mt = maxes.data<float>();
  float* ms = mt + N;
  for (int64_t i = 0; i < N; ++i) {
    float a = -INFINITY, b = -INFINITY;
    for (int64_t j = 0; j < cols; ++j) {
      a = std::max(a, float(tp[i * Vt + j] / T));
      b = std::max(b, float(sp[i * Vs + j] / T));
    }
    mt[i] = a;
    ms[i] = b;
  }
  all_reduce(maxes, true);
  Tensor sums = Tensor::empty({3, N}, DType::f32);
  float* st = sums.data<float>();
  float* ss = st + N;
  float* sa = ss + N;
  for (int64_t i = 0; i < N; ++i) {
    double zt = 0, zs = 0, za = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const double a = tp[i * Vt + j] / T - mt[i], b = sp[i * Vs + j] / T - ms[i];
      const double e = std::exp(a);
      zt += e;
      zs += std::exp(b);
      za += e * (a - b);
    }
    st[i] = float(zt);
    ss[i] = float(zs);
    sa[i] = float(za);
  }
  all_reduce(sums, false);
  int64_t valid = 0;
  double total = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (y.data<int32_t>()[i] == ignore_index) continue;
    ++valid;
    total += double(sa[i]) / st[i] - std::log(double(st[i])) + std::log(double(ss[i]));
  }
  if (dstudent.defined() && valid > 0) {
    TESSERA_CHECK(dstudent.shape() == student.shape(), "distillation: dstudent ",
                  dstudent.describe(), " must match the student logits ", student.describe());
    Tensor grad = Tensor::zeros({N, Vs}, DType::f32);
    float* g = grad.data<float>();
    const double k = scale * T / double(valid);
    for (int64_t i = 0; i < N; ++i) {
      if (y.data<int32_t>()[i] == ignore_index) continue;
      for (int64_t j = 0; j < cols; ++j) {
        const double p = std::exp(sp[i * Vs + j] / T - ms[i]) / ss[i];
        const double q = std::exp(tp[i * Vt + j] / T - mt[i]) / st[i];
        g[i * Vs + j] = float(k * (p - q));
      }
    }
    ops::add_inplace(dstudent,
                     dstudent.device().is_cpu() ? grad : to_device(grad, dstudent.device()));
  }
  return valid > 0 ? T * T * total / double(valid) : 0.0;
}

}  // namespace tessera::models
