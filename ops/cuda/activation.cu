// CUDA kernels for ops/activation.h: GELU (tanh approximation) as in ops/cpu/activation.cc,
// y = x * sigmoid(2u), with expf (not __expf) so results track the CPU kernel closely. Grid-stride
// loops, 4 elements per thread when every pointer is 16-byte aligned.
#include "ops/cuda/activation.cuh"
#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int kBlock = 256;
constexpr float kA = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kB = 0.044715f;

__device__ inline float gelu(float v) {
  const float u = kA * (v + kB * v * v * v);
  return v / (1.0f + expf(-2.0f * u));  // exp overflow to inf gives -0, the limit
}

__device__ inline float gelu_grad(float dy, float v) {
  const float u = kA * (v + kB * v * v * v);
  const float s = 1.0f / (1.0f + expf(-2.0f * u));
  const float du = kA * (1.0f + 3.0f * kB * v * v);
  return dy * (s + 2.0f * v * s * (1.0f - s) * du);
}

// Elements [V*begin, ...) in groups of V; `groups` groups in all.
template <int V>
__global__ void forward_kernel(const float* x, float* y, int64_t begin, int64_t groups) {
  for (int64_t i = begin + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < groups;
       i += int64_t(gridDim.x) * blockDim.x) {
    float r[V];
    load<V>(x + V * i, r);
    for (int l = 0; l < V; ++l) r[l] = gelu(r[l]);
    store<V>(y + V * i, r);
  }
}

template <int V>
__global__ void backward_kernel(const float* dy, const float* x, float* dx, int64_t begin,
                                int64_t groups) {
  for (int64_t i = begin + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < groups;
       i += int64_t(gridDim.x) * blockDim.x) {
    float g[V], v[V];
    load<V>(dy + V * i, g);
    load<V>(x + V * i, v);
    for (int l = 0; l < V; ++l) g[l] = gelu_grad(g[l], v[l]);
    store<V>(dx + V * i, g);
  }
}

}  // namespace

void gelu_forward(const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const int64_t n4 = (aligned16(x) && aligned16(y)) ? n / 4 : 0;
  if (n4) forward_kernel<4><<<grid_for(n4, kBlock), kBlock, 0, stream>>>(x, y, 0, n4);
  if (4 * n4 < n) {
    forward_kernel<1><<<grid_for(n - 4 * n4, kBlock), kBlock, 0, stream>>>(x, y, 4 * n4, n);
  }
  check_launch("gelu_forward");
}

void gelu_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const int64_t n4 = (aligned16(dy) && aligned16(x) && aligned16(dx)) ? n / 4 : 0;
  if (n4) backward_kernel<4><<<grid_for(n4, kBlock), kBlock, 0, stream>>>(dy, x, dx, 0, n4);
  if (4 * n4 < n) {
    backward_kernel<1><<<grid_for(n - 4 * n4, kBlock), kBlock, 0, stream>>>(dy, x, dx, 4 * n4, n);
  }
  check_launch("gelu_backward");
}

}  // namespace tessera::ops::cuda
