// CUDA kernels for ops/cross_entropy.h. Forward: one block per row computes the row's
// log-sum-exp (max pass, then exp-sum pass) and its loss into a scratch buffer; one block then
// sums the row losses in double in a fixed order (deterministic) and divides by n_valid.
// Backward: one block per row writes dloss / n_valid * (softmax - y), or zeros when ignored; y is
// the one-hot target or the soft targets (smoothing, mixing) of ops/cross_entropy.h.
// Rows are v long (the stride, which sets the vector width) and their first `cols` are valid:
// the reductions skip the padding, the gradient writes zeros there.
#include "ops/cuda/common.cuh"
#include "ops/cuda/cross_entropy.cuh"
#include "ops/cuda/launch.cuh"

namespace tessera::ops::cuda {
namespace {

template <int V>
__global__ void lse_kernel(const float* logits, const int32_t* targets, float* lse, float* row_loss,
                           int64_t v, int64_t cols, int ignore_index, const int32_t* mix_targets,
                           const float* weights, float smoothing) {
  __shared__ float smem[32];
  const float* x = logits + blockIdx.x * v;
  const int64_t step = int64_t(blockDim.x) * V;
  // A vector load starting below cols stays inside the row (v is a multiple of V); its lanes at
  // or past cols are padding and skipped.
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x * V; j < cols; j += step) {
    float r[V];
    load<V>(x + j, r);
    for (int l = 0; l < V; ++l)
      if (j + l < cols) mx = fmaxf(mx, r[l]);
  }
  mx = block_reduce(mx, MaxOp{}, smem);
  float s = 0.0f;
  for (int64_t j = threadIdx.x * V; j < cols; j += step) {
    float r[V];
    load<V>(x + j, r);
    for (int l = 0; l < V; ++l)
      if (j + l < cols) s += expf(r[l] - mx);
  }
  s = block_reduce(s, SumOp{}, smem);
  // Label smoothing: the row's sum of logits (a third pass, only then; uniform over the block).
  float total = 0.0f;
  if (smoothing != 0.0f) {
    __syncthreads();  // smem is reused
    for (int64_t j = threadIdx.x * V; j < cols; j += step) {
      float r[V];
      load<V>(x + j, r);
      for (int l = 0; l < V; ++l)
        if (j + l < cols) total += r[l];
    }
    total = block_reduce(total, SumOp{}, smem);
  }
  if (threadIdx.x == 0) {
    const float l = mx + logf(s);
    lse[blockIdx.x] = l;
    const int32_t t = targets[blockIdx.x];
    float hard = x[t < 0 ? 0 : t];
    if (mix_targets) {
      const float w = weights[blockIdx.x];
      hard = w * x[t < 0 ? 0 : t] + (1.0f - w) * x[mix_targets[blockIdx.x]];
    }
    const float dot = (1.0f - smoothing) * hard + smoothing / float(cols) * total;
    row_loss[blockIdx.x] = t == ignore_index ? 0.0f : l - dot;
  }
}

// One block: loss[0] = sum(row_loss) / n_valid in double, or 0 when nothing is valid.
__global__ void mean_kernel(const float* row_loss, int64_t n, int64_t n_valid, float* loss) {
  __shared__ double smem[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += row_loss[i];
  s = block_reduce(s, SumOp{}, smem);
  if (threadIdx.x == 0) loss[0] = n_valid > 0 ? float(s / double(n_valid)) : 0.0f;
}

template <int V>
__global__ void grad_kernel(const float* logits, const int32_t* targets, const float* lse,
                            float scale, float* dlogits, int64_t v, int64_t cols, int ignore_index,
                            const int32_t* mix_targets, const float* weights, float smoothing) {
  const int64_t off = blockIdx.x * v;
  const int64_t step = int64_t(blockDim.x) * V;
  const int32_t t = targets[blockIdx.x];
  if (t == ignore_index) {
    for (int64_t j = threadIdx.x * V; j < v; j += step) {
      float z[V];
      for (int l = 0; l < V; ++l) z[l] = 0.0f;
      store<V>(dlogits + off + j, z);
    }
    return;
  }
  const float l0 = lse[blockIdx.x];
  // Soft targets (ops/cross_entropy.h): keep * (w e_t + (1 - w) e_b) + spread.
  const float keep = scale * (1.0f - smoothing), spread = scale * smoothing / float(cols);
  const float w = mix_targets ? weights[blockIdx.x] : 1.0f;
  const int64_t b = mix_targets ? mix_targets[blockIdx.x] : -1;
  for (int64_t j = threadIdx.x * V; j < v; j += step) {
    float r[V];
    load<V>(logits + off + j, r);
    for (int l = 0; l < V; ++l) {
      float g = scale * expf(r[l] - l0) - spread;
      if (j + l == t) g -= keep * w;
      if (j + l == b) g -= keep * (1.0f - w);
      r[l] = j + l < cols ? g : 0.0f;
    }
    store<V>(dlogits + off + j, r);
  }
}

}  // namespace

void cross_entropy_forward(const float* logits, const int32_t* targets, float* loss, float* lse,
                           int64_t n, int64_t v, int64_t cols, int ignore_index, int64_t n_valid,
                           const int32_t* mix_targets, const float* weights, float smoothing,
                           cudaStream_t stream) {
  float* row_loss = nullptr;
  if (n > 0 && cols > 0) {
    ::tessera::cuda::check(
        cudaMallocAsync(reinterpret_cast<void**>(&row_loss), size_t(n) * sizeof(float), stream),
        "cross_entropy_forward: cudaMallocAsync");
    const int block = row_block(v);
    if (rows_vec4(v) && aligned16(logits)) {
      lse_kernel<4><<<n, block, 0, stream>>>(logits, targets, lse, row_loss, v, cols, ignore_index,
                                             mix_targets, weights, smoothing);
    } else {
      lse_kernel<1><<<n, block, 0, stream>>>(logits, targets, lse, row_loss, v, cols, ignore_index,
                                             mix_targets, weights, smoothing);
    }
  }
  // Runs also for n == 0 (or cols == 0, where every target must be ignored): the loss is then 0.
  mean_kernel<<<1, 256, 0, stream>>>(row_loss, row_loss ? n : 0, n_valid, loss);
  check_launch("cross_entropy_forward");
  if (row_loss) {
    ::tessera::cuda::check(cudaFreeAsync(row_loss, stream), "cross_entropy_forward: cudaFreeAsync");
  }
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse,
                            float dloss, float* dlogits, int64_t n, int64_t v, int64_t cols,
                            int ignore_index, int64_t n_valid, const int32_t* mix_targets,
                            const float* weights, float smoothing, cudaStream_t stream) {
  if (n == 0 || v == 0) return;
  const float scale = n_valid > 0 ? float(double(dloss) / double(n_valid)) : 0.0f;
  const int block = row_block(v);
  if (rows_vec4(v) && aligned16(logits) && aligned16(dlogits)) {
    grad_kernel<4><<<n, block, 0, stream>>>(logits, targets, lse, scale, dlogits, v, cols,
                                            ignore_index, mix_targets, weights, smoothing);
  } else {
    grad_kernel<1><<<n, block, 0, stream>>>(logits, targets, lse, scale, dlogits, v, cols,
                                            ignore_index, mix_targets, weights, smoothing);
  }
  check_launch("cross_entropy_backward");
}

}  // namespace tessera::ops::cuda
