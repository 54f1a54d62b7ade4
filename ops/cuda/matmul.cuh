#pragma once
// CUDA launchers for ops/matmul.h: raw device pointers to contiguous row-major matrices, the op's
// stream. Products go through cuBLASLt (one handle and workspace per device, made on first use),
// with f32 accumulation (CUBLAS_COMPUTE_32F: no TF32). Bias broadcast, bias add and the dbias
// column sums are small own kernels (deterministic: fixed-order two-pass column sums).

#include <cuda_runtime.h>

#include <cstdint>

#include "core/bf16.h"
#include "core/dtype.h"
#include "ops/cpu/matmul.h"

namespace tessera::ops::cuda {

using cpu::GemmShape;

// C_i = alpha * op(A_i) @ op(B_i) + beta * C_i for each of s.batch products (see cpu::GemmShape).
// With beta = 0, C is not read.
void gemm_f32(const GemmShape& s, float alpha, const float* a, const float* b, float beta, float* c,
              cudaStream_t stream);
// bf16 operands, f32 accumulation; c has c_dtype (f32 or bf16).
void gemm_bf16(const GemmShape& s, float alpha, const bf16* a, const bf16* b, float beta, void* c,
               DType c_dtype, cudaStream_t stream);

// y[r, :] = bias (bias f32 or bf16) for every row r < rows; y f32.
void broadcast_rows(const void* bias, DType bias_dtype, int64_t rows, int64_t cols, float* y,
                    cudaStream_t stream);
// y[r, :] += bias in place, y bf16 (computed in f32, rounded once more).
void add_rows_bf16(const void* bias, DType bias_dtype, int64_t rows, int64_t cols, bf16* y,
                   cudaStream_t stream);

// out[j] += sum_r x[r, j]: per 256-row chunk partials, then the chunks in order.
void column_sums_add(const float* x, int64_t rows, int64_t cols, float* out, cudaStream_t stream);
void column_sums_add(const bf16* x, int64_t rows, int64_t cols, float* out, cudaStream_t stream);

// Element conversion, round to nearest even, NaN stays NaN.
void convert(const float* src, bf16* dst, int64_t n, cudaStream_t stream);
void convert(const bf16* src, float* dst, int64_t n, cudaStream_t stream);

}  // namespace tessera::ops::cuda
