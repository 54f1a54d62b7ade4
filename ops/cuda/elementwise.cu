// CUDA kernels for ops/elementwise.h. Grid-stride loops over float4 (128-bit loads and stores)
// when every pointer is 16-byte aligned, with a scalar tail; scalar otherwise.
#include "ops/cuda/elementwise.cuh"
#include "ops/cuda/launch.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int kBlock = 256;

__global__ void add_vec4_kernel(const float4* a, const float4* b, float4* out, int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4;
       i += int64_t(gridDim.x) * blockDim.x) {
    float4 x = a[i], y = b[i];
    out[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
  }
}

__global__ void add_kernel(const float* a, const float* b, float* out, int64_t begin, int64_t n) {
  for (int64_t i = begin + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = a[i] + b[i];
  }
}

__global__ void scale_vec4_kernel(const float4* x, float alpha, float4* out, int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4;
       i += int64_t(gridDim.x) * blockDim.x) {
    float4 v = x[i];
    out[i] = make_float4(alpha * v.x, alpha * v.y, alpha * v.z, alpha * v.w);
  }
}

__global__ void scale_kernel(const float* x, float alpha, float* out, int64_t begin, int64_t n) {
  for (int64_t i = begin + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = alpha * x[i];
  }
}

}  // namespace

void add(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  int64_t n4 = (aligned16(a) && aligned16(b) && aligned16(out)) ? n / 4 : 0;
  if (n4) {
    add_vec4_kernel<<<grid_for(n4, kBlock), kBlock, 0, stream>>>(
        reinterpret_cast<const float4*>(a), reinterpret_cast<const float4*>(b),
        reinterpret_cast<float4*>(out), n4);
  }
  if (4 * n4 < n)
    add_kernel<<<grid_for(n - 4 * n4, kBlock), kBlock, 0, stream>>>(a, b, out, 4 * n4, n);
  check_launch("add");
}

void scale(const float* x, float alpha, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  int64_t n4 = (aligned16(x) && aligned16(out)) ? n / 4 : 0;
  if (n4) {
    scale_vec4_kernel<<<grid_for(n4, kBlock), kBlock, 0, stream>>>(
        reinterpret_cast<const float4*>(x), alpha, reinterpret_cast<float4*>(out), n4);
  }
  if (4 * n4 < n) {
    scale_kernel<<<grid_for(n - 4 * n4, kBlock), kBlock, 0, stream>>>(x, alpha, out, 4 * n4, n);
  }
  check_launch("scale");
}

}  // namespace tessera::ops::cuda
