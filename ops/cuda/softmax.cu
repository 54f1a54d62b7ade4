// CUDA kernels for ops/softmax.h: one block per row, three passes (max; exp and sum; scale) that
// re-read the row from L1/L2, fp32 accumulation, deterministic block reductions.
#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/softmax.cuh"

namespace tessera::ops::cuda {
namespace {

template <int V>
__global__ void forward_kernel(const float* x, float* y, int64_t cols) {
  __shared__ float smem[32];
  const float* xr = x + blockIdx.x * cols;
  float* yr = y + blockIdx.x * cols;
  const int64_t step = int64_t(blockDim.x) * V;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x * V; j < cols; j += step) {
    float r[V];
    load<V>(xr + j, r);
    for (int l = 0; l < V; ++l) mx = fmaxf(mx, r[l]);
  }
  mx = block_reduce(mx, MaxOp{}, smem);
  // A row of -inf gives NaN (exp(nan)), as torch and the CPU kernel do.
  float sum = 0.0f;
  for (int64_t j = threadIdx.x * V; j < cols; j += step) {
    float r[V];
    load<V>(xr + j, r);
    for (int l = 0; l < V; ++l) sum += expf(r[l] - mx);
  }
  sum = block_reduce(sum, SumOp{}, smem);
  const float inv = 1.0f / sum;
  for (int64_t j = threadIdx.x * V; j < cols; j += step) {
    float r[V];
    load<V>(xr + j, r);
    for (int l = 0; l < V; ++l) r[l] = expf(r[l] - mx) * inv;
    store<V>(yr + j, r);
  }
}

// dx = y * (dy - sum(dy * y)); dx may alias dy (each element is read before it is written by
// the same thread).
template <int V>
__global__ void backward_kernel(const float* dy, const float* y, float* dx, int64_t cols) {
  __shared__ float smem[32];
  const int64_t off = blockIdx.x * cols;
  const int64_t step = int64_t(blockDim.x) * V;
  float dot = 0.0f;
  for (int64_t j = threadIdx.x * V; j < cols; j += step) {
    float g[V], p[V];
    load<V>(dy + off + j, g);
    load<V>(y + off + j, p);
    for (int l = 0; l < V; ++l) dot += g[l] * p[l];
  }
  dot = block_reduce(dot, SumOp{}, smem);
  for (int64_t j = threadIdx.x * V; j < cols; j += step) {
    float g[V], p[V];
    load<V>(dy + off + j, g);
    load<V>(y + off + j, p);
    for (int l = 0; l < V; ++l) g[l] = p[l] * (g[l] - dot);
    store<V>(dx + off + j, g);
  }
}

}  // namespace

void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  const int block = row_block(cols);
  if (rows_vec4(cols) && aligned16(x) && aligned16(y)) {
    forward_kernel<4><<<rows, block, 0, stream>>>(x, y, cols);
  } else {
    forward_kernel<1><<<rows, block, 0, stream>>>(x, y, cols);
  }
  check_launch("softmax_forward");
}

void softmax_backward(const float* dy, const float* y, float* dx, int64_t rows, int64_t cols,
                      cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  const int block = row_block(cols);
  if (rows_vec4(cols) && aligned16(dy) && aligned16(y) && aligned16(dx)) {
    backward_kernel<4><<<rows, block, 0, stream>>>(dy, y, dx, cols);
  } else {
    backward_kernel<1><<<rows, block, 0, stream>>>(dy, y, dx, cols);
  }
  check_launch("softmax_backward");
}

}  // namespace tessera::ops::cuda
