// CUDA kernels for ops/layernorm.h. Forward: one block per row, two-pass variance as on the CPU.
// Backward: one block per 64-row chunk writes dx row by row and keeps that chunk's dweight/dbias
// partial sums in a scratch buffer (each column owned by one thread, so no atomics); a second
// kernel sums the chunks in order into dweight/dbias. The same chunking as ops/cpu/layernorm.cc.
#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/layernorm.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int64_t kChunkRows = 64;

template <int V>
__global__ void forward_kernel(const float* x, const float* w, const float* b, float* y,
                               float* mean, float* rstd, int64_t c, float eps) {
  __shared__ float smem[32];
  const int64_t off = blockIdx.x * c;
  const int64_t step = int64_t(blockDim.x) * V;
  float s = 0.0f;
  for (int64_t j = threadIdx.x * V; j < c; j += step) {
    float r[V];
    load<V>(x + off + j, r);
    for (int l = 0; l < V; ++l) s += r[l];
  }
  const float m = block_reduce(s, SumOp{}, smem) / float(c);
  float q = 0.0f;
  for (int64_t j = threadIdx.x * V; j < c; j += step) {
    float r[V];
    load<V>(x + off + j, r);
    for (int l = 0; l < V; ++l) q += (r[l] - m) * (r[l] - m);
  }
  const float rs = 1.0f / sqrtf(block_reduce(q, SumOp{}, smem) / float(c) + eps);
  for (int64_t j = threadIdx.x * V; j < c; j += step) {
    float r[V], wv[V], bv[V];
    load<V>(x + off + j, r);
    load<V>(w + j, wv);
    load<V>(b + j, bv);
    for (int l = 0; l < V; ++l) r[l] = (r[l] - m) * rs * wv[l] + bv[l];
    store<V>(y + off + j, r);
  }
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = m;
    rstd[blockIdx.x] = rs;
  }
}

// Block k: rows [64k, min(n, 64k + 64)). partial[k] = [dweight part (c) | dbias part (c)].
template <int V>
__global__ void backward_rows_kernel(const float* dy, const float* x, const float* w,
                                     const float* mean, const float* rstd, float* dx,
                                     float* partial, int64_t n, int64_t c) {
  __shared__ float smem[32];
  const int64_t r0 = blockIdx.x * kChunkRows;
  const int64_t r1 = min(n, r0 + kChunkRows);
  float* pw = partial + blockIdx.x * 2 * c;
  float* pb = pw + c;
  const int64_t step = int64_t(blockDim.x) * V;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t off = r * c;
    const float m = mean[r], rs = rstd[r];
    float sg = 0.0f, sgx = 0.0f;  // sums of dy*w and dy*w*xhat
    for (int64_t j = threadIdx.x * V; j < c; j += step) {
      float g[V], xv[V], wv[V];
      load<V>(dy + off + j, g);
      load<V>(x + off + j, xv);
      load<V>(w + j, wv);
      for (int l = 0; l < V; ++l) {
        const float gw = g[l] * wv[l];
        sg += gw;
        sgx += gw * ((xv[l] - m) * rs);
      }
    }
    const float a = block_reduce(sg, SumOp{}, smem) / float(c);
    const float bb = block_reduce(sgx, SumOp{}, smem) / float(c);
    for (int64_t j = threadIdx.x * V; j < c; j += step) {
      float g[V], xv[V], wv[V], d[V], pwv[V], pbv[V];
      load<V>(dy + off + j, g);
      load<V>(x + off + j, xv);
      load<V>(w + j, wv);
      if (r == r0) {
        for (int l = 0; l < V; ++l) pwv[l] = pbv[l] = 0.0f;
      } else {
        load<V>(pw + j, pwv);
        load<V>(pb + j, pbv);
      }
      for (int l = 0; l < V; ++l) {
        const float xh = (xv[l] - m) * rs;
        d[l] = rs * (g[l] * wv[l] - a - xh * bb);
        pwv[l] += g[l] * xh;
        pbv[l] += g[l];
      }
      store<V>(dx + off + j, d);
      store<V>(pw + j, pwv);
      store<V>(pb + j, pbv);
    }
  }
}

// dst[j] += sum over chunks k (in order) of partial[k * 2c + j], j in [0, 2c): the first c
// columns go to dweight, the rest to dbias.
__global__ void reduce_chunks_kernel(const float* partial, int64_t chunks, int64_t c,
                                     float* dweight, float* dbias) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= 2 * c) return;
  float s = 0.0f;
  for (int64_t k = 0; k < chunks; ++k) s += partial[k * 2 * c + j];
  if (j < c) {
    dweight[j] += s;
  } else {
    dbias[j - c] += s;
  }
}

}  // namespace

void layernorm_forward(const float* x, const float* weight, const float* bias, float* y,
                       float* mean, float* rstd, int64_t n, int64_t c, float eps,
                       cudaStream_t stream) {
  if (n == 0 || c == 0) return;
  const int block = row_block(c);
  if (rows_vec4(c) && aligned16(x) && aligned16(weight) && aligned16(bias) && aligned16(y)) {
    forward_kernel<4><<<n, block, 0, stream>>>(x, weight, bias, y, mean, rstd, c, eps);
  } else {
    forward_kernel<1><<<n, block, 0, stream>>>(x, weight, bias, y, mean, rstd, c, eps);
  }
  check_launch("layernorm_forward");
}

void layernorm_backward(const float* dy, const float* x, const float* weight, const float* mean,
                        const float* rstd, float* dx, float* dweight, float* dbias, int64_t n,
                        int64_t c, cudaStream_t stream) {
  if (n == 0 || c == 0) return;
  const int64_t chunks = (n + kChunkRows - 1) / kChunkRows;
  float* partial = nullptr;
  ::tessera::cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&partial),
                                         size_t(chunks) * 2 * c * sizeof(float), stream),
                         "layernorm_backward: cudaMallocAsync");
  const int block = row_block(c);
  // cudaMallocAsync returns 256-byte aligned blocks, so partial rows are aligned when c % 4 == 0.
  if (rows_vec4(c) && aligned16(dy) && aligned16(x) && aligned16(weight) && aligned16(dx)) {
    backward_rows_kernel<4>
        <<<chunks, block, 0, stream>>>(dy, x, weight, mean, rstd, dx, partial, n, c);
  } else {
    backward_rows_kernel<1>
        <<<chunks, block, 0, stream>>>(dy, x, weight, mean, rstd, dx, partial, n, c);
  }
  reduce_chunks_kernel<<<grid_for(2 * c, 256), 256, 0, stream>>>(partial, chunks, c, dweight,
                                                                 dbias);
  check_launch("layernorm_backward");
  ::tessera::cuda::check(cudaFreeAsync(partial, stream), "layernorm_backward: cudaFreeAsync");
}

}  // namespace tessera::ops::cuda
