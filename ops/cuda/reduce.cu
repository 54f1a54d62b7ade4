// CUDA kernels for ops/reduce.h. Same structure as the CPU: fixed 32768-element chunks, each
// summed in double by one block (strided per thread, then a fixed-order block reduction), then the
// chunk sums are added by one block in a fixed order. Deterministic for a given n (not bitwise
// equal to the CPU's lane layout, but the same chunking and precision).
#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/reduce.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int64_t kChunk = 1 << 15;
constexpr int kBlock = 256;

template <bool kSquare>
__global__ void chunk_kernel(const float* x, int64_t n, double* partial) {
  __shared__ double smem[32];
  const int64_t begin = blockIdx.x * kChunk;
  const int64_t end = min(n, begin + kChunk);
  double acc = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double d = x[i];
    acc += kSquare ? d * d : d;
  }
  acc = block_reduce(acc, SumOp{}, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// One block: partial[chunks] = the total of partial[0 .. chunks).
__global__ void total_kernel(double* partial, int64_t chunks) {
  __shared__ double smem[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < chunks; i += blockDim.x) acc += partial[i];
  acc = block_reduce(acc, SumOp{}, smem);
  if (threadIdx.x == 0) partial[chunks] = acc;
}

template <bool kSquare>
double reduce(const float* x, int64_t n, cudaStream_t stream, const char* name) {
  if (n == 0) return 0.0;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  double* partial = nullptr;
  ::tessera::cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&partial),
                                         size_t(chunks + 1) * sizeof(double), stream),
                         name);
  chunk_kernel<kSquare><<<chunks, kBlock, 0, stream>>>(x, n, partial);
  total_kernel<<<1, kBlock, 0, stream>>>(partial, chunks);
  check_launch(name);
  double result = 0.0;
  ::tessera::cuda::check(
      cudaMemcpyAsync(&result, partial + chunks, sizeof(double), cudaMemcpyDeviceToHost, stream),
      name);
  ::tessera::cuda::check(cudaFreeAsync(partial, stream), name);
  ::tessera::cuda::check(cudaStreamSynchronize(stream), name);
  return result;
}

}  // namespace

double sum(const float* x, int64_t n, cudaStream_t stream) {
  return reduce<false>(x, n, stream, "sum");
}

double sum_squares(const float* x, int64_t n, cudaStream_t stream) {
  return reduce<true>(x, n, stream, "sum_squares");
}

}  // namespace tessera::ops::cuda
