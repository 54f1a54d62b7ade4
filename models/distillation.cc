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

}  // namespace tessera::models
