// CUDA kernels for ops/contrastive.h, following ops/cpu/contrastive.cc's arithmetic: row sums in
// double (one block per row, fixed-order block reduction), softplus/sigmoid in double.
#include "ops/cuda/common.cuh"
#include "ops/cuda/contrastive.cuh"
#include "ops/cuda/launch.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int kBlock = 256;

__device__ inline double softplus(double u) {
  return fmax(u, 0.0) + log1p(exp(-fabs(u)));
}
__device__ inline double sigmoid(double u) {
  return u >= 0 ? 1.0 / (1.0 + exp(-u)) : exp(u) / (1.0 + exp(u));
}

__global__ void normalize_forward_kernel(const float* x, float* y, float* norm, int64_t e,
                                         float eps) {
  __shared__ double smem[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * e;
  double ss = 0;
  for (int64_t k = threadIdx.x; k < e; k += blockDim.x) ss += double(xr[k]) * xr[k];
  ss = block_reduce(ss, SumOp{}, smem);
  const float d = fmaxf(float(sqrt(ss)), eps);
  if (threadIdx.x == 0) norm[r] = d;
  const float inv = 1.0f / d;
  for (int64_t k = threadIdx.x; k < e; k += blockDim.x) y[r * e + k] = xr[k] * inv;
}

__global__ void normalize_backward_kernel(const float* dy, const float* y, const float* norm,
                                          float* dx, int64_t e, float eps) {
  __shared__ double smem[32];
  const int64_t r = blockIdx.x;
  const float* dyr = dy + r * e;
  const float* yr = y + r * e;
  const float inv = 1.0f / norm[r];
  const bool clamped = norm[r] <= eps;  // y = x / eps is linear in x
  double dot = 0;
  if (!clamped)
    for (int64_t k = threadIdx.x; k < e; k += blockDim.x) dot += double(yr[k]) * dyr[k];
  const float d = clamped ? 0.0f : float(block_reduce(dot, SumOp{}, smem));
  for (int64_t k = threadIdx.x; k < e; k += blockDim.x) dx[r * e + k] = (dyr[k] - yr[k] * d) * inv;
}

__global__ void pair_rows_kernel(const float* logits, int64_t bt, float bias, int64_t offset,
                                 double* rows) {
  __shared__ double smem[32];
  const int64_t i = blockIdx.x;
  const float* l = logits + i * bt;
  double s = 0;
  for (int64_t j = threadIdx.x; j < bt; j += blockDim.x) {
    const double z = j == offset + i ? 1.0 : -1.0;
    s += softplus(-z * (double(l[j]) + bias));
  }
  s = block_reduce(s, SumOp{}, smem);
  if (threadIdx.x == 0) rows[i] = s;
}

__global__ void pair_total_kernel(const double* rows, int64_t bi, float* loss) {
  double total = 0;
  for (int64_t i = 0; i < bi; ++i) total += rows[i];  // row order, as the CPU sums
  loss[0] = float(total / double(bi));
}

__global__ void pair_backward_kernel(const float* logits, int64_t bt, float bias, int64_t offset,
                                     double g, float* dlogits, int64_t n) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / bt, j = e % bt;
    const double z = j == offset + i ? 1.0 : -1.0;
    dlogits[e] = float(g * -z * sigmoid(-z * (double(logits[e]) + bias)));
  }
}

}  // namespace

void l2_normalize_forward(const float* x, float* y, float* norm, int64_t n, int64_t e, float eps,
                          cudaStream_t stream) {
  if (n == 0) return;
  normalize_forward_kernel<<<unsigned(n), row_block(e), 0, stream>>>(x, y, norm, e, eps);
  check_launch("l2_normalize_forward");
}

void l2_normalize_backward(const float* dy, const float* y, const float* norm, float* dx, int64_t n,
                           int64_t e, float eps, cudaStream_t stream) {
  if (n == 0) return;
  normalize_backward_kernel<<<unsigned(n), row_block(e), 0, stream>>>(dy, y, norm, dx, e, eps);
  check_launch("l2_normalize_backward");
}

void sigmoid_pair_loss_forward(const float* logits, int64_t bi, int64_t bt, float bias,
                               int64_t offset, double* rows, float* loss, cudaStream_t stream) {
  if (bi == 0) return;
  pair_rows_kernel<<<unsigned(bi), row_block(bt), 0, stream>>>(logits, bt, bias, offset, rows);
  check_launch("sigmoid_pair_loss_forward (rows)");
  pair_total_kernel<<<1, 1, 0, stream>>>(rows, bi, loss);
  check_launch("sigmoid_pair_loss_forward (total)");
}

void sigmoid_pair_loss_backward(const float* logits, int64_t bi, int64_t bt, float bias,
                                int64_t offset, float dloss, float* dlogits, cudaStream_t stream) {
  const int64_t n = bi * bt;
  if (n == 0) return;
  pair_backward_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(
      logits, bt, bias, offset, double(dloss) / double(bi), dlogits, n);
  check_launch("sigmoid_pair_loss_backward");
}

}  // namespace tessera::ops::cuda
