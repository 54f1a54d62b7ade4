#pragma once
// CPU launchers for ops/matmul.h: raw pointers to contiguous row-major matrices.

#include <cstdint>
#include <string>

#include "core/bf16.h"
#include "core/dtype.h"

namespace tessera::ops::cpu {

// `batch` independent products C_i = alpha * op(A_i) @ op(B_i) + beta * C_i, stored one after
// another: A_i is m x k (k x m when trans_a), B_i is k x n (n x k when trans_b), C_i is m x n.
struct GemmShape {
  int64_t batch = 1;
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
};

// f32 through dnnl_sgemm (matmul.cc).
void gemm_f32(const GemmShape& s, float alpha, const float* a, const float* b, float beta,
              float* c);

// bf16 operands, f32 accumulation, through a cached oneDNN matmul primitive where oneDNN has a
// bf16 matmul for this CPU, else through the f32 sgemm on widened operands (matmul_bf16.cc).
// c has c_dtype (f32 or bf16). bias (length n, dtype bias_dtype f32 or bf16, or nullptr) is added
// to every row of the product after alpha is applied; beta * c is added last.
void gemm_bf16(const GemmShape& s, float alpha, const bf16* a, const bf16* b, float beta, void* c,
               DType c_dtype, const void* bias = nullptr, DType bias_dtype = DType::f32);

// Which engine runs gemm_bf16 here, for start-up lines and `tessera info`, e.g.
// "oneDNN brg:avx512_core_bf16".
std::string bf16_gemm_path();

// y[r, :] = bias for every row r < rows.
void broadcast_rows(const float* bias, int64_t rows, int64_t cols, float* y);

// out[j] += sum_r x[r, j]: the bias gradient. Each column is summed in row order whatever the
// thread count.
void column_sums_add(const float* x, int64_t rows, int64_t cols, float* out);
void column_sums_add(const bf16* x, int64_t rows, int64_t cols, float* out);

// Element conversion, round to nearest even (matmul.cc).
void convert(const float* src, bf16* dst, int64_t n);
void convert(const bf16* src, float* dst, int64_t n);

}  // namespace tessera::ops::cpu
