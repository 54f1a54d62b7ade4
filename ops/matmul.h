#pragma once
// Matrix products: a general (batched) matmul, the Linear layer's forward and backward, and the
// f32 <-> bf16 conversion that mixed precision needs around them.
//
// Dtypes. f32 inputs give an f32 result. bf16 inputs (both operands bf16) are multiplied with
// f32 accumulation and give an f32 or a bf16 result, as the output tensor's dtype says. Operands
// of different dtypes are refused: convert() one of them first. The first bf16 call of each
// shape creates and caches a oneDNN primitive (about a millisecond); later calls reuse it.
//
// All tensors are contiguous row-major; outputs are passed in (handles share buffers). Outputs
// must not alias inputs.

#include "core/tensor.h"

namespace tessera::ops {

// out = alpha * op(a) @ op(b) + beta * out, where op() transposes the last two dimensions when
// the flag is set. 2-D, or 3-D with equal batch (no broadcasting). beta = 1 accumulates; with
// beta = 0 out's old contents are ignored (NaNs in it do not propagate).
void matmul(const Tensor& a,    // (M, K), or (K, M) with trans_a; 3-D: (B, M, K) / (B, K, M)
            const Tensor& b,    // (K, N), or (N, K) with trans_b; 3-D: (B, K, N) / (B, N, K)
            const Tensor& out,  // (M, N) or (B, M, N); f32, or f32/bf16 for bf16 inputs
            bool trans_a = false, bool trans_b = false, float alpha = 1.0f, float beta = 0.0f);

// y = x @ weight^T + bias, as PyTorch's nn.Linear. Leading dimensions of x are flattened into
// rows. x and weight are both f32 (y f32) or both bf16 (y f32 or bf16; bias f32 or bf16).
void linear_forward(const Tensor& x,       // (..., in)
                    const Tensor& weight,  // (out, in)
                    const Tensor& bias,    // (out), or undefined for no bias
                    const Tensor& y);      // (..., out)

// Backward of linear_forward. Contract: dx is WRITTEN (=); dweight and dbias ACCUMULATE (+=).
//   dx       = dy @ weight          (skipped when dx is undefined, e.g. for the first layer)
//   dweight += dy^T @ x             (rows of all leading dimensions summed; skipped when dweight
//                                    is undefined: a frozen weight, train/freeze.h)
//   dbias   += sum of dy's rows     (skipped when dbias is undefined, e.g. no bias)
// Dtypes. f32: everything f32. Mixed precision: x and weight bf16 (the copies forward used); dy
// bf16 or f32 (f32 is rounded to bf16 for the two products, costing one extra pass, while dbias
// sums the f32 values); dweight and dbias f32 (the master gradients); dx f32 or bf16.
void linear_backward(const Tensor& dy,       // (..., out)
                     const Tensor& x,        // (..., in)
                     const Tensor& weight,   // (out, in)
                     const Tensor& dx,       // (..., in), or undefined
                     const Tensor& dweight,  // (out, in) f32, or undefined
                     const Tensor& dbias);   // (out) f32, or undefined

// dst = src converted between f32 and bf16 (round to nearest even, NaN stays NaN, as
// core/bf16.h and torch's .to(torch.bfloat16)). Shapes may differ if the element counts match;
// equal dtypes copy.
void convert(const Tensor& src,   // (any) f32 or bf16
             const Tensor& dst);  // same numel, f32 or bf16

}  // namespace tessera::ops
