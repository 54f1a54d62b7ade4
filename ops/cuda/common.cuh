#pragma once
// Device helpers shared by the CUDA kernels (included by .cu files only): deterministic warp and
// block reductions, and 1- or 4-wide float loads/stores for the row kernels.
//
// Reductions combine values in a fixed order (xor-shuffle butterfly inside a warp, then the warp
// results in warp order), so a kernel's result does not depend on timing: no atomics anywhere.

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename T, typename Op>
__device__ inline T warp_reduce(T v, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Every thread of the block gets the result. blockDim.x must be a multiple of 32 (<= 1024);
// `smem` holds 32 T and may be reused by the next call (the leading barrier protects it).
template <typename T, typename Op>
__device__ inline T block_reduce(T v, Op op, T* smem) {
  v = warp_reduce(v, op);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  T r = smem[0];
  for (int w = 1; w < warps; ++w) r = op(r, smem[w]);
  return r;
}

// V consecutive floats (V = 1 or 4; with 4 the address is 16-byte aligned).
template <int V>
__device__ inline void load(const float* p, float (&r)[V]) {
  if constexpr (V == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    r[0] = t.x, r[1] = t.y, r[2] = t.z, r[3] = t.w;
  } else {
    r[0] = *p;
  }
}

template <int V>
__device__ inline void store(float* p, const float (&r)[V]) {
  if constexpr (V == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(r[0], r[1], r[2], r[3]);
  } else {
    *p = r[0];
  }
}

// bf16 as raw bits; round to nearest even, NaN stays NaN (as core/bf16.h).
__device__ inline float bf16_bits_to_float(uint16_t h) {
  return __uint_as_float(uint32_t(h) << 16);
}
__device__ inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// Block size for a one-block-per-row kernel: enough threads for the row, 32..256.
inline int row_block(int64_t cols) {
  int b = 32;
  while (b < 256 && b < cols) b *= 2;
  return b;
}

// A row kernel may use 4-wide accesses when every row starts 16-byte aligned.
inline bool rows_vec4(int64_t cols) {
  return cols % 4 == 0;
}

}  // namespace tessera::ops::cuda
