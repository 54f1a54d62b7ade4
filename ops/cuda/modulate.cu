// CUDA kernels for ops/modulate.h. Forward: elementwise over (b, t, c), 4 columns per thread when
// c % 4 == 0 and the pointers are aligned. Backward: one thread per (sample, column) walks the t
// tokens in order, writing dx and summing dshift/dscale (coalesced across columns, no atomics).
#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/modulate.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int kBlock = 256;

// Groups of V columns; `groups` = b * t * c / V.
template <int V>
__global__ void forward_kernel(const float* x, const float* shift, const float* scale, float* y,
                               int64_t t, int64_t c, int64_t groups) {
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups;
       g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = g * V;        // element index
    const int64_t j = i % c;        // column
    const int64_t s = i / (t * c);  // sample
    float r[V], sh[V], sc[V];
    load<V>(x + i, r);
    load<V>(shift + s * c + j, sh);
    load<V>(scale + s * c + j, sc);
    for (int l = 0; l < V; ++l) r[l] = r[l] * (1.0f + sc[l]) + sh[l];
    store<V>(y + i, r);
  }
}

// grid.x covers columns, grid.y samples.
__global__ void backward_kernel(const float* dy, const float* x, const float* scale, float* dx,
                                float* dshift, float* dscale, int64_t t, int64_t c) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= c) return;
  const int64_t s = blockIdx.y;
  const float k = 1.0f + scale[s * c + j];
  float ds = 0.0f, dsc = 0.0f;
  for (int64_t r = 0; r < t; ++r) {
    const int64_t i = (s * t + r) * c + j;
    const float g = dy[i];
    dx[i] = g * k;
    ds += g;
    dsc += g * x[i];
  }
  dshift[s * c + j] = ds;
  dscale[s * c + j] = dsc;
}

}  // namespace

void modulate_forward(const float* x, const float* shift, const float* scale, float* y, int64_t b,
                      int64_t t, int64_t c, cudaStream_t stream) {
  const int64_t n = b * t * c;
  if (n == 0) return;
  if (rows_vec4(c) && aligned16(x) && aligned16(shift) && aligned16(scale) && aligned16(y)) {
    forward_kernel<4>
        <<<grid_for(n / 4, kBlock), kBlock, 0, stream>>>(x, shift, scale, y, t, c, n / 4);
  } else {
    forward_kernel<1><<<grid_for(n, kBlock), kBlock, 0, stream>>>(x, shift, scale, y, t, c, n);
  }
  check_launch("modulate_forward");
}

void modulate_backward(const float* dy, const float* x, const float* scale, float* dx,
                       float* dshift, float* dscale, int64_t b, int64_t t, int64_t c,
                       cudaStream_t stream) {
  if (b == 0 || c == 0) return;
  const dim3 grid(unsigned((c + kBlock - 1) / kBlock), grid_y(b, "modulate_backward"));
  backward_kernel<<<grid, kBlock, 0, stream>>>(dy, x, scale, dx, dshift, dscale, t, c);
  check_launch("modulate_backward");
}

}  // namespace tessera::ops::cuda
