// CUDA kernels for ops/silu.h: elementwise, 4 floats per thread (128-bit accesses) when every
// pointer is 16-byte aligned and n % 4 == 0. Same formulas as ops/cpu/silu.cc:
// y = x / (1 + exp(-x)), dx = dy * (s + x * s * (1 - s)) with s = sigmoid(x); exp overflowing
// to inf for x < -88 gives the limits (y = -0, s = 0), not NaN.
#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/silu.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int kBlock = 256;

__device__ inline float sigmoid(float x) {
  return 1.0f / (1.0f + expf(-x));
}

template <int V>
__global__ void forward_kernel(const float* x, float* y, int64_t groups) {
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups;
       g += int64_t(gridDim.x) * blockDim.x) {
    float r[V];
    load<V>(x + g * V, r);
    for (int l = 0; l < V; ++l) r[l] = r[l] / (1.0f + expf(-r[l]));
    store<V>(y + g * V, r);
  }
}

template <int V>
__global__ void backward_kernel(const float* dy, const float* x, float* dx, int64_t groups) {
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups;
       g += int64_t(gridDim.x) * blockDim.x) {
    float d[V], v[V];
    load<V>(dy + g * V, d);
    load<V>(x + g * V, v);
    for (int l = 0; l < V; ++l) {
      const float s = sigmoid(v[l]);
      d[l] = d[l] * (s + v[l] * s * (1.0f - s));
    }
    store<V>(dx + g * V, d);
  }
}

}  // namespace

void silu_forward(const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (n % 4 == 0 && aligned16(x) && aligned16(y))
    forward_kernel<4><<<grid_for(n / 4, kBlock), kBlock, 0, stream>>>(x, y, n / 4);
  else
    forward_kernel<1><<<grid_for(n, kBlock), kBlock, 0, stream>>>(x, y, n);
  check_launch("silu_forward");
}

void silu_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (n % 4 == 0 && aligned16(dy) && aligned16(x) && aligned16(dx))
    backward_kernel<4><<<grid_for(n / 4, kBlock), kBlock, 0, stream>>>(dy, x, dx, n / 4);
  else
    backward_kernel<1><<<grid_for(n, kBlock), kBlock, 0, stream>>>(dy, x, dx, n);
  check_launch("silu_backward");
}

}  // namespace tessera::ops::cuda
