// CUDA kernels for ops/activation.h, with the formulas of ops/cpu/activation.cc and expf (not
// __expf) so results track the CPU kernels closely; exp overflowing to inf gives the limits
// (y = -0, s = 0), not NaN. Grid-stride loops, 4 elements per thread (128-bit accesses) when
// every pointer is 16-byte aligned, the last n % 4 one per thread. Each activation is a functor
// with forward(x) and backward(dy, x); the kernels and launchers are shared.
#include "ops/cuda/activation.cuh"
#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int kBlock = 256;
constexpr float kA = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kB = 0.044715f;

// GELU (tanh approximation): y = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
struct Gelu {
  __device__ static float forward(float v) {
    const float u = kA * (v + kB * v * v * v);
    return v / (1.0f + expf(-2.0f * u));
  }
  __device__ static float backward(float dy, float v) {
    const float u = kA * (v + kB * v * v * v);
    const float s = 1.0f / (1.0f + expf(-2.0f * u));
    const float du = kA * (1.0f + 3.0f * kB * v * v);
    return dy * (s + 2.0f * v * s * (1.0f - s) * du);
  }
};

// Exact GELU: y = x Phi(x), with CUDA's normcdff for Phi (accurate in both tails, where the
// CPU kernel uses a vectorisable erfc fit of the same relative accuracy);
// dx = dy * (Phi(x) + x phi(x)).
struct GeluErf {
  __device__ static float forward(float v) { return v * normcdff(v); }
  __device__ static float backward(float dy, float v) {
    const float pdf = 0.3989422804014327f * expf(-0.5f * v * v);
    return dy * (normcdff(v) + v * pdf);
  }
};

// QuickGELU: y = x * sigmoid(1.702 x), dx = dy * (s + 1.702 x s (1 - s)).
struct QuickGelu {
  __device__ static float forward(float v) { return v / (1.0f + expf(-1.702f * v)); }
  __device__ static float backward(float dy, float v) {
    const float s = 1.0f / (1.0f + expf(-1.702f * v));
    return dy * (s + 1.702f * v * s * (1.0f - s));
  }
};

// SiLU: y = x * sigmoid(x), dx = dy * (s + x * s * (1 - s)).
struct Silu {
  __device__ static float forward(float v) { return v / (1.0f + expf(-v)); }
  __device__ static float backward(float dy, float v) {
    const float s = 1.0f / (1.0f + expf(-v));
    return dy * (s + v * s * (1.0f - s));
  }
};

// Elements [V*begin, ...) in groups of V; `groups` groups in all.
template <class F, int V>
__global__ void forward_kernel(const float* x, float* y, int64_t begin, int64_t groups) {
  for (int64_t i = begin + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < groups;
       i += int64_t(gridDim.x) * blockDim.x) {
    float r[V];
    load<V>(x + V * i, r);
    for (int l = 0; l < V; ++l) r[l] = F::forward(r[l]);
    store<V>(y + V * i, r);
  }
}

template <class F, int V>
__global__ void backward_kernel(const float* dy, const float* x, float* dx, int64_t begin,
                                int64_t groups) {
  for (int64_t i = begin + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < groups;
       i += int64_t(gridDim.x) * blockDim.x) {
    float g[V], v[V];
    load<V>(dy + V * i, g);
    load<V>(x + V * i, v);
    for (int l = 0; l < V; ++l) g[l] = F::backward(g[l], v[l]);
    store<V>(dx + V * i, g);
  }
}

template <class F>
void launch_forward(const float* x, float* y, int64_t n, cudaStream_t stream, const char* name) {
  if (n == 0) return;
  const int64_t n4 = (aligned16(x) && aligned16(y)) ? n / 4 : 0;
  if (n4) forward_kernel<F, 4><<<grid_for(n4, kBlock), kBlock, 0, stream>>>(x, y, 0, n4);
  if (4 * n4 < n) {
    forward_kernel<F, 1><<<grid_for(n - 4 * n4, kBlock), kBlock, 0, stream>>>(x, y, 4 * n4, n);
  }
  check_launch(name);
}

template <class F>
void launch_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t stream,
                     const char* name) {
  if (n == 0) return;
  const int64_t n4 = (aligned16(dy) && aligned16(x) && aligned16(dx)) ? n / 4 : 0;
  if (n4) backward_kernel<F, 4><<<grid_for(n4, kBlock), kBlock, 0, stream>>>(dy, x, dx, 0, n4);
  if (4 * n4 < n) {
    backward_kernel<F, 1>
        <<<grid_for(n - 4 * n4, kBlock), kBlock, 0, stream>>>(dy, x, dx, 4 * n4, n);
  }
  check_launch(name);
}

}  // namespace

void gelu_forward(const float* x, float* y, int64_t n, cudaStream_t stream) {
  launch_forward<Gelu>(x, y, n, stream, "gelu_forward");
}

void gelu_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t stream) {
  launch_backward<Gelu>(dy, x, dx, n, stream, "gelu_backward");
}

void gelu_erf_forward(const float* x, float* y, int64_t n, cudaStream_t stream) {
  launch_forward<GeluErf>(x, y, n, stream, "gelu_erf_forward");
}

void gelu_erf_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t stream) {
  launch_backward<GeluErf>(dy, x, dx, n, stream, "gelu_erf_backward");
}

void quick_gelu_forward(const float* x, float* y, int64_t n, cudaStream_t stream) {
  launch_forward<QuickGelu>(x, y, n, stream, "quick_gelu_forward");
}

void quick_gelu_backward(const float* dy, const float* x, float* dx, int64_t n,
                         cudaStream_t stream) {
  launch_backward<QuickGelu>(dy, x, dx, n, stream, "quick_gelu_backward");
}

void silu_forward(const float* x, float* y, int64_t n, cudaStream_t stream) {
  launch_forward<Silu>(x, y, n, stream, "silu_forward");
}

void silu_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t stream) {
  launch_backward<Silu>(dy, x, dx, n, stream, "silu_backward");
}

}  // namespace tessera::ops::cuda
