// CUDA kernels for ops/embedding.h. Forward: one block per position copies its table row.
// Backward without atomics: the host (which already holds the ids for the range check) sorts the
// positions by id, stably, into segments; one block per distinct id then adds that id's rows of
// dout to its dtable row in position order: the same additions, in the same order, as the CPU.
#include <algorithm>
#include <numeric>
#include <vector>

#include "ops/cuda/common.cuh"
#include "ops/cuda/embedding.cuh"
#include "ops/cuda/launch.cuh"

namespace tessera::ops::cuda {
namespace {

template <int V>
__global__ void gather_kernel(const int32_t* ids, const float* table, float* out, int64_t c) {
  const float* src = table + int64_t(ids[blockIdx.x]) * c;
  float* dst = out + blockIdx.x * c;
  for (int64_t j = threadIdx.x * V; j < c; j += int64_t(blockDim.x) * V) {
    float r[V];
    load<V>(src + j, r);
    store<V>(dst + j, r);
  }
}

// Segment s: positions order[start[s] .. start[s + 1]) all have id ids[order[start[s]]].
template <int V>
__global__ void scatter_kernel(const float* dout, const int32_t* ids, const int32_t* order,
                               const int32_t* start, float* dtable, int64_t c) {
  const int32_t p0 = start[blockIdx.x], p1 = start[blockIdx.x + 1];
  float* dst = dtable + int64_t(ids[order[p0]]) * c;
  for (int64_t j = threadIdx.x * V; j < c; j += int64_t(blockDim.x) * V) {
    float acc[V];
    load<V>(dst + j, acc);
    for (int32_t p = p0; p < p1; ++p) {
      float r[V];
      load<V>(dout + int64_t(order[p]) * c + j, r);
      for (int l = 0; l < V; ++l) acc[l] += r[l];
    }
    store<V>(dst + j, acc);
  }
}

}  // namespace

void embedding_forward(const int32_t* ids, const float* table, float* out, int64_t n, int64_t v,
                       int64_t c, cudaStream_t stream) {
  (void)v;  // ids were checked against v by the adapter
  if (n == 0 || c == 0) return;
  const int block = row_block(c);
  if (rows_vec4(c) && aligned16(table) && aligned16(out)) {
    gather_kernel<4><<<n, block, 0, stream>>>(ids, table, out, c);
  } else {
    gather_kernel<1><<<n, block, 0, stream>>>(ids, table, out, c);
  }
  check_launch("embedding_forward");
}

void embedding_backward(const float* dout, const int32_t* ids, float* dtable, int64_t n, int64_t v,
                        int64_t c, const int32_t* host_ids, cudaStream_t stream) {
  (void)v;
  if (n == 0 || c == 0) return;
  // order: positions sorted by id, ties in position order; start: segment boundaries, then n.
  std::vector<int32_t> host(size_t(2 * n + 1));
  int32_t* order = host.data();
  std::iota(order, order + n, 0);
  std::stable_sort(order, order + n,
                   [&](int32_t a, int32_t b) { return host_ids[a] < host_ids[b]; });
  int32_t* start = order + n;
  int64_t segments = 0;
  for (int64_t p = 0; p < n; ++p) {
    if (p == 0 || host_ids[order[p]] != host_ids[order[p - 1]]) start[segments++] = int32_t(p);
  }
  start[segments] = int32_t(n);
  int32_t* dev = nullptr;
  const size_t bytes = size_t(n + segments + 1) * sizeof(int32_t);
  ::tessera::cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&dev), bytes, stream),
                         "embedding_backward: cudaMallocAsync");
  // `host` is pageable and freed at return: cudaMemcpyAsync from pageable memory "might be
  // synchronous" (CUDA's API sync behaviour notes), i.e. might still read it later. The plain
  // cudaMemcpy returns once the buffer is consumed; it runs on the legacy stream, ordered after
  // the (blocking) compute stream's allocation above and before the kernel below, and costs no
  // extra wait: the adapter's host copy of the ids has just drained the device.
  ::tessera::cuda::check(cudaMemcpy(dev, host.data(), bytes, cudaMemcpyHostToDevice),
                         "embedding_backward: cudaMemcpy");
  const int block = row_block(c);
  if (rows_vec4(c) && aligned16(dout) && aligned16(dtable)) {
    scatter_kernel<4><<<segments, block, 0, stream>>>(dout, ids, dev, dev + n, dtable, c);
  } else {
    scatter_kernel<1><<<segments, block, 0, stream>>>(dout, ids, dev, dev + n, dtable, c);
  }
  check_launch("embedding_backward");
  ::tessera::cuda::check(cudaFreeAsync(dev, stream), "embedding_backward: cudaFreeAsync");
}

}  // namespace tessera::ops::cuda
