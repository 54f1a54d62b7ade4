// Own flash-style attention kernels (ops/attention.h). The (T, T) scores are never stored.
//
//  - forward: one thread per query row, BQ = 64 rows per block; the block streams the keys and
//    values through shared memory in tiles of BK = 32 and each thread keeps an online softmax
//    (running max m, running sum l, rescaled f32 accumulator), as ops/cpu/attention.cc does per
//    tile. Causal blocks stop at their last query's key. lse = m + log(l).
//  - backward, two kernels so that nothing needs atomics (deterministic):
//      dq: one thread per query: delta = dout·out (kept in `delta` for the second kernel),
//          then over key tiles p = exp(s - lse), ds = p * (dout·v - delta), dq += ds * k / sqrt(D);
//      dk, dv: one thread per key, over query tiles (q, dout, lse, delta in shared memory):
//          dv += p * dout, dk += ds * q / sqrt(D).
//  - Per-thread vectors are sized MAXD in {32, 64, 128} (the smallest >= D) and loops run to
//    MAXD with a `d < D` guard, so they unroll into registers for any D.
// Storage S is float or uint16_t (bf16 bits); loads convert to f32, stores round once.
//  - Dropout on the probabilities (ops/attention_dropout.h): each thread draws the factor m of
//    its (query, key) pairs from the keyed Philox block (the CPU kernel's masks): forward
//    accumulates p m v (l keeps the undropped sum), backward uses p m for dv and m dp for ds.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "ops/cuda/attention.cuh"
#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int BQ = 64;  // query rows per block (threads)
constexpr int BK = 32;  // keys per shared-memory tile

__device__ inline float ld(const float* p) {
  return *p;
}
__device__ inline float ld(const uint16_t* p) {
  return bf16_bits_to_float(*p);
}
__device__ inline void st(float* p, float v) {
  *p = v;
}
__device__ inline void st(uint16_t* p, float v) {
  *p = float_to_bf16_bits(v);
}

struct Geom {
  int64_t T, H, D;
  __device__ int64_t ld3() const { return 3 * H * D; }  // qkv row stride
};

// Loads rows [r0, r0 + BK) (clamped to T) of one head's slice `part` (0 q, 1 k, 2 v) into
// tile[BK][MAXD]; rows past T are zero.
template <typename S, int MAXD>
__device__ void load_tile(const S* qkv, int64_t b, int64_t h, int part, int64_t r0, const Geom& g,
                          float (*tile)[MAXD]) {
  for (int e = threadIdx.x; e < BK * MAXD; e += blockDim.x) {
    const int r = e / MAXD, d = e % MAXD;
    const int64_t t = r0 + r;
    tile[r][d] = (t < g.T && d < g.D)
                     ? ld(qkv + (b * g.T + t) * g.ld3() + part * g.H * g.D + h * g.D + d)
                     : 0.0f;
  }
}

template <typename S, int MAXD>
__global__ void __launch_bounds__(BQ)
    forward_kernel(const S* qkv, S* out, float* lse, Geom g, bool causal, float scale,
                   AttentionDropout drop) {
  __shared__ float ks[BK][MAXD], vs[BK][MAXD];
  const int64_t b = blockIdx.y / g.H, h = blockIdx.y % g.H;
  const int64_t t = int64_t(blockIdx.x) * BQ + threadIdx.x;
  const bool valid = t < g.T;
  float q[MAXD], acc[MAXD];
#pragma unroll
  for (int d = 0; d < MAXD; ++d) {
    q[d] = valid && d < g.D ? ld(qkv + (b * g.T + t) * g.ld3() + h * g.D + d) * scale : 0.0f;
    acc[d] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int64_t kv_end = causal ? ::min(g.T, int64_t(blockIdx.x + 1) * BQ) : g.T;
  for (int64_t k0 = 0; k0 < kv_end; k0 += BK) {
    __syncthreads();
    load_tile<S, MAXD>(qkv, b, h, 1, k0, g, ks);
    load_tile<S, MAXD>(qkv, b, h, 2, k0, g, vs);
    __syncthreads();
    if (!valid) continue;
    for (int j = 0; j < BK; ++j) {
      const int64_t key = k0 + j;
      if (key >= g.T || (causal && key > t)) break;
      float s = 0.0f;
#pragma unroll
      for (int d = 0; d < MAXD; ++d) s += q[d] * ks[j][d];
      if (s > m) {
        const float corr = expf(m - s);  // 0 on the first key (m = -inf)
        l *= corr;
#pragma unroll
        for (int d = 0; d < MAXD; ++d) acc[d] *= corr;
        m = s;
      }
      const float p = expf(s - m);
      l += p;
      const float pm = drop.p > 0 ? p * attention_dropout_factor(drop, b, h, g.T, t, key) : p;
#pragma unroll
      for (int d = 0; d < MAXD; ++d) acc[d] += pm * vs[j][d];
    }
  }
  if (!valid) return;
  const float inv = 1.0f / l;
  S* o = out + (b * g.T + t) * g.H * g.D + h * g.D;
#pragma unroll
  for (int d = 0; d < MAXD; ++d)
    if (d < g.D) st(o + d, acc[d] * inv);
  lse[(b * g.H + h) * g.T + t] = m + logf(l);
}

template <typename S, int MAXD>
__global__ void __launch_bounds__(BQ)
    backward_dq_kernel(const S* dout, const S* qkv, const S* out, const float* lse, S* dqkv,
                       float* delta, Geom g, bool causal, float scale, AttentionDropout drop) {
  __shared__ float ks[BK][MAXD], vs[BK][MAXD];
  const int64_t b = blockIdx.y / g.H, h = blockIdx.y % g.H;
  const int64_t t = int64_t(blockIdx.x) * BQ + threadIdx.x;
  const bool valid = t < g.T;
  const int64_t C = g.H * g.D;
  float q[MAXD], dO[MAXD], dq[MAXD];
  float dl = 0.0f;
#pragma unroll
  for (int d = 0; d < MAXD; ++d) {
    const bool in = valid && d < g.D;
    q[d] = in ? ld(qkv + (b * g.T + t) * g.ld3() + h * g.D + d) * scale : 0.0f;
    dO[d] = in ? ld(dout + (b * g.T + t) * C + h * g.D + d) : 0.0f;
    dl += in ? dO[d] * ld(out + (b * g.T + t) * C + h * g.D + d) : 0.0f;
    dq[d] = 0.0f;
  }
  const float L = valid ? lse[(b * g.H + h) * g.T + t] : 0.0f;
  if (valid) delta[(b * g.H + h) * g.T + t] = dl;
  const int64_t kv_end = causal ? ::min(g.T, int64_t(blockIdx.x + 1) * BQ) : g.T;
  for (int64_t k0 = 0; k0 < kv_end; k0 += BK) {
    __syncthreads();
    load_tile<S, MAXD>(qkv, b, h, 1, k0, g, ks);
    load_tile<S, MAXD>(qkv, b, h, 2, k0, g, vs);
    __syncthreads();
    if (!valid) continue;
    for (int j = 0; j < BK; ++j) {
      const int64_t key = k0 + j;
      if (key >= g.T || (causal && key > t)) break;
      float s = 0.0f, dp = 0.0f;
#pragma unroll
      for (int d = 0; d < MAXD; ++d) s += q[d] * ks[j][d], dp += dO[d] * vs[j][d];
      const float f = drop.p > 0 ? attention_dropout_factor(drop, b, h, g.T, t, key) : 1.0f;
      const float ds = expf(s - L) * (dp * f - dl) * scale;
#pragma unroll
      for (int d = 0; d < MAXD; ++d) dq[d] += ds * ks[j][d];
    }
  }
  if (!valid) return;
  S* o = dqkv + (b * g.T + t) * g.ld3() + h * g.D;
#pragma unroll
  for (int d = 0; d < MAXD; ++d)
    if (d < g.D) st(o + d, dq[d]);
}

template <typename S, int MAXD>
__global__ void __launch_bounds__(BQ)
    backward_dkv_kernel(const S* dout, const S* qkv, const float* lse, const float* delta, S* dqkv,
                        Geom g, bool causal, float scale, AttentionDropout drop) {
  __shared__ float qs[BK][MAXD], dos[BK][MAXD], ls[BK], dls[BK];
  const int64_t b = blockIdx.y / g.H, h = blockIdx.y % g.H;
  const int64_t key = int64_t(blockIdx.x) * BQ + threadIdx.x;
  const bool valid = key < g.T;
  const int64_t C = g.H * g.D;
  float k[MAXD], v[MAXD], dk[MAXD], dv[MAXD];
#pragma unroll
  for (int d = 0; d < MAXD; ++d) {
    const bool in = valid && d < g.D;
    k[d] = in ? ld(qkv + (b * g.T + key) * g.ld3() + C + h * g.D + d) : 0.0f;
    v[d] = in ? ld(qkv + (b * g.T + key) * g.ld3() + 2 * C + h * g.D + d) : 0.0f;
    dk[d] = dv[d] = 0.0f;
  }
  // Causal: queries before this block's first key see none of its keys.
  const int64_t q_begin = causal ? int64_t(blockIdx.x) * BQ : 0;
  for (int64_t q0 = q_begin - q_begin % BK; q0 < g.T; q0 += BK) {
    __syncthreads();
    load_tile<S, MAXD>(qkv, b, h, 0, q0, g, qs);
    for (int e = threadIdx.x; e < BK * MAXD; e += blockDim.x) {
      const int r = e / MAXD, d = e % MAXD;
      const int64_t t = q0 + r;
      dos[r][d] = (t < g.T && d < g.D) ? ld(dout + (b * g.T + t) * C + h * g.D + d) : 0.0f;
    }
    for (int r = threadIdx.x; r < BK; r += blockDim.x) {
      const int64_t t = q0 + r;
      ls[r] = t < g.T ? lse[(b * g.H + h) * g.T + t] : 0.0f;
      dls[r] = t < g.T ? delta[(b * g.H + h) * g.T + t] : 0.0f;
    }
    __syncthreads();
    if (!valid) continue;
    for (int i = 0; i < BK; ++i) {
      const int64_t t = q0 + i;
      if (t >= g.T) break;
      if (causal && t < key) continue;
      float s = 0.0f, dp = 0.0f;
#pragma unroll
      for (int d = 0; d < MAXD; ++d) s += qs[i][d] * k[d], dp += dos[i][d] * v[d];
      const float p = expf(s * scale - ls[i]);
      const float f = drop.p > 0 ? attention_dropout_factor(drop, b, h, g.T, t, key) : 1.0f;
      const float ds = p * (dp * f - dls[i]) * scale;
      const float pm = p * f;
#pragma unroll
      for (int d = 0; d < MAXD; ++d) dv[d] += pm * dos[i][d], dk[d] += ds * qs[i][d];
    }
  }
  if (!valid) return;
  S* o = dqkv + (b * g.T + key) * g.ld3() + h * g.D;
#pragma unroll
  for (int d = 0; d < MAXD; ++d) {
    if (d < g.D) {
      st(o + C + d, dk[d]);
      st(o + 2 * C + d, dv[d]);
    }
  }
}

void check_dims(int64_t B, int64_t T, int64_t H, int64_t D, const char* what) {
  TESSERA_CHECK(D >= 1 && D <= kAttentionMaxHeadDim, what, ": head dim ", D,
                " is outside the CUDA kernel's 1..", kAttentionMaxHeadDim);
  TESSERA_CHECK(B * H <= 65535, what, ": B * H = ", B * H, " exceeds the grid's 65535");
}

// Calls f.template operator()<MAXD>() with the smallest MAXD >= D.
template <typename F>
void with_maxd(int64_t D, F&& f) {
  if (D <= 32)
    f.template operator()<32>();
  else if (D <= 64)
    f.template operator()<64>();
  else
    f.template operator()<128>();
}

template <typename S>
void forward_impl(const S* qkv, S* out, float* lse, int64_t B, int64_t T, int64_t H, int64_t D,
                  bool causal, const AttentionDropout& drop, cudaStream_t stream) {
  check_dims(B, T, H, D, "attention_forward");
  if (B * T * H == 0) return;
  const Geom g{T, H, D};
  const dim3 grid(unsigned((T + BQ - 1) / BQ), unsigned(B * H));
  const float scale = 1.0f / std::sqrt(float(D));
  with_maxd(D, [&]<int MAXD>() {
    forward_kernel<S, MAXD><<<grid, BQ, 0, stream>>>(qkv, out, lse, g, causal, scale, drop);
  });
  check_launch("attention_forward");
}

template <typename S>
void backward_impl(const S* dout, const S* qkv, const S* out, const float* lse, S* dqkv,
                   float* delta, int64_t B, int64_t T, int64_t H, int64_t D, bool causal,
                   const AttentionDropout& drop, cudaStream_t stream) {
  check_dims(B, T, H, D, "attention_backward");
  if (B * T * H == 0) return;
  const Geom g{T, H, D};
  const dim3 grid(unsigned((T + BQ - 1) / BQ), unsigned(B * H));
  const float scale = 1.0f / std::sqrt(float(D));
  with_maxd(D, [&]<int MAXD>() {
    backward_dq_kernel<S, MAXD>
        <<<grid, BQ, 0, stream>>>(dout, qkv, out, lse, dqkv, delta, g, causal, scale, drop);
    check_launch("attention_backward (dq)");
    backward_dkv_kernel<S, MAXD>
        <<<grid, BQ, 0, stream>>>(dout, qkv, lse, delta, dqkv, g, causal, scale, drop);
  });
  check_launch("attention_backward (dk, dv)");
}

}  // namespace

void attention_forward(const float* qkv, float* out, float* lse, int64_t B, int64_t T, int64_t H,
                       int64_t D, bool causal, const AttentionDropout& drop, cudaStream_t stream) {
  forward_impl(qkv, out, lse, B, T, H, D, causal, drop, stream);
}
void attention_forward_bf16(const uint16_t* qkv, uint16_t* out, float* lse, int64_t B, int64_t T,
                            int64_t H, int64_t D, bool causal, const AttentionDropout& drop,
                            cudaStream_t stream) {
  forward_impl(qkv, out, lse, B, T, H, D, causal, drop, stream);
}
void attention_backward(const float* dout, const float* qkv, const float* out, const float* lse,
                        float* dqkv, float* delta, int64_t B, int64_t T, int64_t H, int64_t D,
                        bool causal, const AttentionDropout& drop, cudaStream_t stream) {
  backward_impl(dout, qkv, out, lse, dqkv, delta, B, T, H, D, causal, drop, stream);
}
void attention_backward_bf16(const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                             const float* lse, uint16_t* dqkv, float* delta, int64_t B, int64_t T,
                             int64_t H, int64_t D, bool causal, const AttentionDropout& drop,
                             cudaStream_t stream) {
  backward_impl(dout, qkv, out, lse, dqkv, delta, B, T, H, D, causal, drop, stream);
}

}  // namespace tessera::ops::cuda
