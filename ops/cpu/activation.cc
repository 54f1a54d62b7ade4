// Activations: own vectorised kernels rather than oneDNN's eltwise ones: both are memory bound
// and measured alike (bench/ops/activation_bench.cc keeps oneDNN's GELU as a comparison), and the
// own kernels need no primitive built and cached per tensor size. Each costs one fast_exp and one
// division per element.
#include "ops/cpu/activation.h"

#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

// GELU (tanh approximation). 0.5 (1 + tanh(u)) = sigmoid(2u), so y = x / (1 + exp(-2u)), with no
// cancellation near u = 0 (1 - 2/(exp(2u)+1) would lose digits there).
constexpr float kA = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kB = 0.044715f;

TESSERA_CPU_KERNEL(void, gelu_forward_kernel, (const float* x, float* y, int64_t n), (x, y, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float u = kA * (v + kB * v * v * v);
    // exp(-2u) overflows to +inf for very negative x, giving y = -0 (the limit), not NaN.
    y[i] = v / (1.0f + fast_exp(-2.0f * u));
  }
}

// d/dx [x s(2u)] = s + x s (1 - s) 2 u',  s = sigmoid(2u),  u' = sqrt(2/pi) (1 + 3 kB x^2).
TESSERA_CPU_KERNEL(void, gelu_backward_kernel,
                   (const float* dy, const float* x, float* dx, int64_t n), (dy, x, dx, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float u = kA * (v + kB * v * v * v);
    const float s = 1.0f / (1.0f + fast_exp(-2.0f * u));
    const float du = kA * (1.0f + 3.0f * kB * v * v);
    dx[i] = dy[i] * (s + 2.0f * v * s * (1.0f - s) * du);
  }
}

// The standard normal CDF Phi(x) = 0.5 erfc(-x / sqrt 2) and density phi(x), for the exact
// GELU. erfc(z), z >= 0, is t exp(-z^2) Q(t), t = 1 / (1 + 0.4 z), with Q a degree-8 polynomial
// fitted for relative error (ops/cpu/fit_erfc.py: under 1.5e-7 for every z >= 0, the rounding to
// float of its coefficients included). Relative, not absolute: Phi keeps its accuracy far into
// the left tail where x Phi(x) is tiny, and 1 - erfc/2 has no cancellation on the right
// (erfc/2 <= 1/2). exp(-z^2) = exp(-x^2 / 2) is phi's exponential too, so the backward costs one
// exp, and it does not wait for the polynomial (which it did when the fit was exp(-z^2 + P(t)):
// that chain made the forward 1.7x slower than the tanh form's). One fast_exp and one division,
// no branch, so it vectorises like the tanh form (a libm erf call would keep the loop scalar).
struct NormalCdfPdf {
  float cdf, pdf;
};

constexpr float kInvSqrt2Pi = 0.3989422804014327f;  // 1 / sqrt(2 pi)

TESSERA_ALWAYS_INLINE NormalCdfPdf normal_cdf_and_pdf(float v) {
  // 0.4 z = 0.4 |x| / sqrt 2.
  const float t = 1.0f / (1.0f + (v < 0.0f ? -v : v) * 0.28284271247461901f);
  float q = 5.025443062e-02f;
  q = q * t - 1.828743070e-01f;
  q = q * t + 1.690469533e-01f;
  q = q * t - 5.579537246e-03f;
  q = q * t + 1.414203197e-01f;
  q = q * t + 1.685443223e-01f;
  q = q * t + 2.078424543e-01f;
  q = q * t + 2.256696075e-01f;
  q = q * t + 2.256758660e-01f;
  // The argument's rounding bounds the relative accuracy in the far tail at about 1e-7 x^2 (as
  // for any f32 exp of -x^2/2). It underflows to 0 for |x| > 13 (x^2 / 2 > 87): Phi = 0 or 1
  // there, the limits, and phi = 0.
  const float e = fast_exp_nonpositive(-0.5f * v * v);
  const float half_erfc = 0.5f * t * q * e;
  return {v < 0.0f ? half_erfc : 1.0f - half_erfc, kInvSqrt2Pi * e};
}

TESSERA_CPU_KERNEL(void, gelu_erf_forward_kernel, (const float* x, float* y, int64_t n),
                   (x, y, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * normal_cdf_and_pdf(x[i]).cdf;
}

// d/dx [x Phi(x)] = Phi(x) + x phi(x).
TESSERA_CPU_KERNEL(void, gelu_erf_backward_kernel,
                   (const float* dy, const float* x, float* dx, int64_t n), (dy, x, dx, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const NormalCdfPdf p = normal_cdf_and_pdf(x[i]);
    dx[i] = dy[i] * (p.cdf + x[i] * p.pdf);
  }
}

// QuickGELU: SiLU of 1.702 x times x, with SiLU's limits (exp overflowing gives y = -0, s = 0).
constexpr float kQuick = 1.702f;

TESSERA_CPU_KERNEL(void, quick_gelu_forward_kernel, (const float* x, float* y, int64_t n),
                   (x, y, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0f + fast_exp(-kQuick * x[i]));
}

// d/dx [x s(a x)] = s + a x s (1 - s),  s = sigmoid(a x).
TESSERA_CPU_KERNEL(void, quick_gelu_backward_kernel,
                   (const float* dy, const float* x, float* dx, int64_t n), (dy, x, dx, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float s = 1.0f / (1.0f + fast_exp(-kQuick * v));
    dx[i] = dy[i] * (s + kQuick * v * s * (1.0f - s));
  }
}

// SiLU. fast_exp(-x) overflows to +inf for x < -88, giving y = -0 and s = 0 (the limits), not
// NaN; it underflows to 0 for x > 87, giving y = x and s = 1.
TESSERA_CPU_KERNEL(void, silu_forward_kernel, (const float* x, float* y, int64_t n), (x, y, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0f + fast_exp(-x[i]));
}

TESSERA_CPU_KERNEL(void, silu_backward_kernel,
                   (const float* dy, const float* x, float* dx, int64_t n), (dy, x, dx, n)) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float s = 1.0f / (1.0f + fast_exp(-v));
    dx[i] = dy[i] * (s + v * s * (1.0f - s));
  }
}

// Every activation splits its elements alike over the threads.
template <class Kernel>
void forward_chunks(Kernel kernel, const float* x, float* y, int64_t n) {
  parallel_chunks(n, kElementwiseGrain,
                  [&](int64_t i0, int64_t i1) { kernel(x + i0, y + i0, i1 - i0); });
}

template <class Kernel>
void backward_chunks(Kernel kernel, const float* dy, const float* x, float* dx, int64_t n) {
  parallel_chunks(n, kElementwiseGrain,
                  [&](int64_t i0, int64_t i1) { kernel(dy + i0, x + i0, dx + i0, i1 - i0); });
}

}  // namespace

void gelu_forward(const float* x, float* y, int64_t n) {
  forward_chunks(gelu_forward_kernel, x, y, n);
}

void gelu_backward(const float* dy, const float* x, float* dx, int64_t n) {
  backward_chunks(gelu_backward_kernel, dy, x, dx, n);
}

void gelu_erf_forward(const float* x, float* y, int64_t n) {
  forward_chunks(gelu_erf_forward_kernel, x, y, n);
}

void gelu_erf_backward(const float* dy, const float* x, float* dx, int64_t n) {
  backward_chunks(gelu_erf_backward_kernel, dy, x, dx, n);
}

void quick_gelu_forward(const float* x, float* y, int64_t n) {
  forward_chunks(quick_gelu_forward_kernel, x, y, n);
}

void quick_gelu_backward(const float* dy, const float* x, float* dx, int64_t n) {
  backward_chunks(quick_gelu_backward_kernel, dy, x, dx, n);
}

void silu_forward(const float* x, float* y, int64_t n) {
  forward_chunks(silu_forward_kernel, x, y, n);
}

void silu_backward(const float* dy, const float* x, float* dx, int64_t n) {
  backward_chunks(silu_backward_kernel, dy, x, dx, n);
}

}  // namespace tessera::ops::cpu
