// CUDA kernels for ops/gated_residual.h, shaped like ops/cuda/modulate.cu: the forward is a
// broadcast FMA (4 columns per thread when aligned), the backward walks the t tokens of one
// (sample, column) in order, so dgate is deterministic without atomics.
#include "ops/cuda/common.cuh"
#include "ops/cuda/gated_residual.cuh"
#include "ops/cuda/launch.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int kBlock = 256;

template <int V>
__global__ void forward_kernel(const float* x, const float* gate, const float* h, float* y,
                               int64_t t, int64_t c, int64_t groups) {
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups;
       g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = g * V, j = i % c, s = i / (t * c);
    float r[V], gt[V], hv[V];
    load<V>(x + i, r);
    load<V>(gate + s * c + j, gt);
    load<V>(h + i, hv);
    for (int l = 0; l < V; ++l) r[l] += gt[l] * hv[l];
    store<V>(y + i, r);
  }
}

// grid.x covers columns, grid.y samples.
__global__ void backward_kernel(const float* dy, const float* gate, const float* h, float* dgate,
                                float* dh, int64_t t, int64_t c) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= c) return;
  const int64_t s = blockIdx.y;
  const float g = gate[s * c + j];
  float acc = 0.0f;
  for (int64_t r = 0; r < t; ++r) {
    const int64_t i = (s * t + r) * c + j;
    const float d = dy[i];  // read before dh[i] is written (dh may alias dy)
    acc += d * h[i];
    dh[i] = g * d;
  }
  dgate[s * c + j] = acc;
}

}  // namespace

void gated_residual_forward(const float* x, const float* gate, const float* h, float* y, int64_t b,
                            int64_t t, int64_t c, cudaStream_t stream) {
  const int64_t n = b * t * c;
  if (n == 0) return;
  if (rows_vec4(c) && aligned16(x) && aligned16(gate) && aligned16(h) && aligned16(y)) {
    forward_kernel<4><<<grid_for(n / 4, kBlock), kBlock, 0, stream>>>(x, gate, h, y, t, c, n / 4);
  } else {
    forward_kernel<1><<<grid_for(n, kBlock), kBlock, 0, stream>>>(x, gate, h, y, t, c, n);
  }
  check_launch("gated_residual_forward");
}

void gated_residual_backward(const float* dy, const float* gate, const float* h, float* dgate,
                             float* dh, int64_t b, int64_t t, int64_t c, cudaStream_t stream) {
  if (b == 0 || c == 0) return;
  const dim3 grid(unsigned((c + kBlock - 1) / kBlock), grid_y(b, "gated_residual_backward"));
  backward_kernel<<<grid, kBlock, 0, stream>>>(dy, gate, h, dgate, dh, t, c);
  check_launch("gated_residual_backward");
}

}  // namespace tessera::ops::cuda
