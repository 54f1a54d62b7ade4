// CUDA kernels for ops/vocab_parallel.h, the same arithmetic as ops/cpu/vocab_parallel.cc: one
// block per row for the row reductions (fixed-order block_reduce, double sums), elementwise
// kernels otherwise; the embedding backward groups positions by row on the host (as
// ops/cuda/embedding.cu), so each dtable row is summed by one block in position order.
#include <algorithm>
#include <numeric>
#include <vector>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/vocab_parallel.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int kBlock = 256;

__global__ void embedding_forward_kernel(const int32_t* ids, const float* table, float* out,
                                         int64_t v_local, int64_t c, int64_t begin) {
  const int64_t i = blockIdx.x, local = int64_t(ids[i]) - begin;
  const bool mine = local >= 0 && local < v_local;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x)
    out[i * c + j] = mine ? table[local * c + j] : 0.0f;
}

// Segment s adds dout rows order[start[s] .. start[s + 1]) to dtable row rows[s].
__global__ void embedding_backward_kernel(const float* dout, const int32_t* order,
                                          const int32_t* start, const int32_t* rows, float* dtable,
                                          int64_t c) {
  const int32_t p0 = start[blockIdx.x], p1 = start[blockIdx.x + 1];
  float* dst = dtable + int64_t(rows[blockIdx.x]) * c;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    float acc = dst[j];
    for (int32_t p = p0; p < p1; ++p) acc += dout[int64_t(order[p]) * c + j];
    dst[j] = acc;
  }
}

__global__ void row_max_kernel(const float* logits, float* row_max, int64_t v, int64_t cols) {
  __shared__ float smem[32];
  const float* x = logits + blockIdx.x * v;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, x[j]);
  m = block_reduce(m, MaxOp{}, smem);
  if (threadIdx.x == 0) row_max[blockIdx.x] = m;
}

__global__ void sum_exp_target_kernel(const float* logits, const int32_t* targets,
                                      const float* row_max, float* sum_exp, float* target_logit,
                                      float* row_sum, int64_t v, int64_t cols, int64_t begin) {
  __shared__ double smem[32];
  const int64_t i = blockIdx.x;
  const float* x = logits + i * v;
  const float m = row_max[i];
  double s = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += expf(x[j] - m);
  s = block_reduce(s, SumOp{}, smem);
  double total = 0;
  if (row_sum) {      // label smoothing: the row's sum of logits (uniform over the block)
    __syncthreads();  // smem is reused
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) total += x[j];
    total = block_reduce(total, SumOp{}, smem);
  }
  if (threadIdx.x == 0) {
    sum_exp[i] = float(s);
    const int64_t t = int64_t(targets[i]) - begin;
    target_logit[i] = t >= 0 && t < cols ? x[t] : 0.0f;
    if (row_sum) row_sum[i] = float(total);
  }
}

__global__ void lse_kernel(const float* row_max, const float* sum_exp, float* lse, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    lse[i] = row_max[i] + logf(sum_exp[i]);
}

// One thread: the row-order double sum the CPU does (n is a batch's tokens).
__global__ void loss_kernel(const float* lse, const float* target_logit, const int32_t* targets,
                            float* loss, int64_t n, int64_t valid, int ignore_index,
                            float smoothing, const float* row_sum, int64_t vocab) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (targets[i] == ignore_index) continue;
    double dot = double(target_logit[i]);
    if (smoothing != 0.0f) {
      dot = (1 - double(smoothing)) * dot + double(smoothing) / double(vocab) * double(row_sum[i]);
    }
    sum += double(lse[i]) - dot;
  }
  loss[0] = valid > 0 ? float(sum / double(valid)) : 0.0f;
}

__global__ void ce_backward_kernel(const float* logits, const int32_t* targets, const float* lse,
                                   float* dlogits, int64_t v, int64_t cols, int64_t begin,
                                   float scale, int ignore_index, int64_t total, float keep,
                                   float spread) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / v, j = e % v;
    const int32_t t = targets[i];
    if (t == ignore_index || j >= cols) {  // ignored row, or padding
      dlogits[e] = 0.0f;
      continue;
    }
    float d = scale * expf(logits[e] - lse[i]) - spread;
    if (int64_t(t) - begin == j) d -= keep;
    dlogits[e] = d;
  }
}

}  // namespace

void vocab_embedding_forward(const int32_t* ids, const float* table, float* out, int64_t n,
                             int64_t v_local, int64_t c, int64_t begin, cudaStream_t stream) {
  if (n == 0 || c == 0) return;
  embedding_forward_kernel<<<unsigned(n), row_block(c), 0, stream>>>(ids, table, out, v_local, c,
                                                                     begin);
  check_launch("vocab_embedding_forward");
}

void vocab_embedding_backward(const float* dout, const int32_t* host_ids, float* dtable, int64_t n,
                              int64_t v_local, int64_t c, int64_t begin, cudaStream_t stream) {
  if (n == 0 || c == 0) return;
  // Positions whose id falls in this shard, stably sorted by id; then segment starts and rows.
  std::vector<int32_t> order;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t local = int64_t(host_ids[i]) - begin;
    if (local >= 0 && local < v_local) order.push_back(int32_t(i));
  }
  if (order.empty()) return;
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return host_ids[a] < host_ids[b]; });
  std::vector<int32_t> start, rows;
  for (size_t p = 0; p < order.size(); ++p) {
    if (p == 0 || host_ids[order[p]] != host_ids[order[p - 1]]) {
      start.push_back(int32_t(p));
      rows.push_back(int32_t(host_ids[order[p]] - begin));
    }
  }
  const int64_t segments = int64_t(start.size());
  start.push_back(int32_t(order.size()));
  std::vector<int32_t> host(order);
  host.insert(host.end(), start.begin(), start.end());
  host.insert(host.end(), rows.begin(), rows.end());
  int32_t* dev = nullptr;
  const size_t bytes = host.size() * sizeof(int32_t);
  ::tessera::cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&dev), bytes, stream),
                         "vocab_embedding_backward: cudaMallocAsync");
  // `host` is pageable and freed at return: cudaMemcpyAsync from pageable memory "might be
  // synchronous" (CUDA's API sync behaviour notes), i.e. might still read it later. The plain
  // cudaMemcpy returns once the buffer is consumed; it runs on the legacy stream, ordered after
  // the (blocking) compute stream's allocation above and before the kernel below, and costs no
  // extra wait: the adapter's host copy of the ids has just drained the device.
  ::tessera::cuda::check(cudaMemcpy(dev, host.data(), bytes, cudaMemcpyHostToDevice),
                         "vocab_embedding_backward: cudaMemcpy");
  const int32_t* d_order = dev;
  const int32_t* d_start = dev + order.size();
  const int32_t* d_rows = d_start + segments + 1;
  embedding_backward_kernel<<<unsigned(segments), row_block(c), 0, stream>>>(dout, d_order, d_start,
                                                                             d_rows, dtable, c);
  check_launch("vocab_embedding_backward");
  ::tessera::cuda::check(cudaFreeAsync(dev, stream), "vocab_embedding_backward: cudaFreeAsync");
}

void vocab_ce_row_max(const float* logits, float* row_max, int64_t n, int64_t v, int64_t cols,
                      cudaStream_t stream) {
  if (n == 0) return;
  row_max_kernel<<<unsigned(n), row_block(v), 0, stream>>>(logits, row_max, v, cols);
  check_launch("vocab_ce_row_max");
}

void vocab_ce_sum_exp_target(const float* logits, const int32_t* targets, const float* row_max,
                             float* sum_exp, float* target_logit, float* row_sum, int64_t n,
                             int64_t v, int64_t cols, int64_t begin, cudaStream_t stream) {
  if (n == 0) return;
  sum_exp_target_kernel<<<unsigned(n), row_block(v), 0, stream>>>(
      logits, targets, row_max, sum_exp, target_logit, row_sum, v, cols, begin);
  check_launch("vocab_ce_sum_exp_target");
}

void vocab_ce_loss(const float* row_max, const float* sum_exp, const float* target_logit,
                   const int32_t* targets, float* lse, float* loss, int64_t n, int64_t valid,
                   int ignore_index, float smoothing, const float* row_sum, int64_t vocab,
                   cudaStream_t stream) {
  if (n > 0) {
    lse_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(row_max, sum_exp, lse, n);
    check_launch("vocab_ce_loss (lse)");
  }
  loss_kernel<<<1, 1, 0, stream>>>(lse, target_logit, targets, loss, n, valid, ignore_index,
                                   smoothing, row_sum, vocab);
  check_launch("vocab_ce_loss");
}

void vocab_ce_backward(const float* logits, const int32_t* targets, const float* lse,
                       float* dlogits, int64_t n, int64_t v, int64_t cols, int64_t begin,
                       float scale, int ignore_index, float smoothing, int64_t vocab,
                       cudaStream_t stream) {
  const int64_t total = n * v;
  if (total == 0) return;
  const float keep = scale * (1.0f - smoothing), spread = scale * smoothing / float(vocab);
  ce_backward_kernel<<<grid_for(total, kBlock), kBlock, 0, stream>>>(
      logits, targets, lse, dlogits, v, cols, begin, scale, ignore_index, total, keep, spread);
  check_launch("vocab_ce_backward");
}

}  // namespace tessera::ops::cuda
