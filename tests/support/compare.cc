#include "tests/support/compare.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "core/bf16.h"

namespace tessera::testing {

Tensor to_cpu_f32(const Tensor& t) {
  Tensor host = t.device().is_cpu() ? t : to_device(t, Device::cpu());
  if (host.dtype() == DType::f32) return host;
  Tensor out = Tensor::empty(host.shape(), DType::f32);
  float* o = out.data<float>();
  for (int64_t i = 0; i < host.numel(); ++i) {
    switch (host.dtype()) {
      case DType::bf16:
        o[i] = bf16_to_float(host.data<bf16>()[i]);
        break;
      case DType::f16:
        o[i] = f16_to_float(host.data<f16>()[i]);
        break;
      case DType::i32:
        o[i] = float(host.data<int32_t>()[i]);
        break;
      default:
        throw_error("to_cpu_f32: unsupported dtype " + std::string(dtype_name(host.dtype())));
    }
  }
  return out;
}

Diff diff(const Tensor& actual, const Tensor& expected) {
  TESSERA_CHECK(actual.numel() == expected.numel(), "diff: ", actual.describe(), " vs ",
                expected.describe());
  Tensor a = to_cpu_f32(actual), e = to_cpu_f32(expected);
  const float* pa = a.data<float>();
  const float* pe = e.data<float>();
  Diff d;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double err = std::fabs(double(pa[i]) - double(pe[i]));
    if (!(err <= d.max_abs)) {  // also catches NaN
      d.max_abs = std::isnan(err) ? INFINITY : err;
      d.worst = i;
    }
    d.scale = std::max(d.scale, std::fabs(double(pe[i])));
  }
  return d;
}

::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double rtol,
                                     const std::string& what) {
  if (actual.shape() != expected.shape()) {
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(actual.shape())
                                         << " vs expected " << shape_str(expected.shape());
  }
  Diff d = diff(actual, expected);
  if (d.relative() <= rtol) return ::testing::AssertionSuccess();
  Tensor a = to_cpu_f32(actual), e = to_cpu_f32(expected);
  return ::testing::AssertionFailure() << absl::StrFormat(
             "%s: max |diff| %.3g at element %d (got %.8g, expected %.8g), scale %.3g, relative "
             "%.3g > tolerance %.1g",
             what, d.max_abs, d.worst, a.data<float>()[d.worst], e.data<float>()[d.worst], d.scale,
             d.relative(), rtol);
}

}  // namespace tessera::testing
