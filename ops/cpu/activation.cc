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

void silu_forward(const float* x, float* y, int64_t n) {
  forward_chunks(silu_forward_kernel, x, y, n);
}

void silu_backward(const float* dy, const float* x, float* dx, int64_t n) {
  backward_chunks(silu_backward_kernel, dy, x, dx, n);
}

}  // namespace tessera::ops::cpu
