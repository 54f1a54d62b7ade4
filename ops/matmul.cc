// Adapters for ops/matmul.h: check dtypes, shapes and devices, then dispatch.
#include "ops/matmul.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/matmul.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/matmul.cuh"
#endif

namespace tessera::ops {
namespace {

bool is_float(const Tensor& t) {
  return t.dtype() == DType::f32 || t.dtype() == DType::bf16;
}

// `t` is defined and f32 or bf16 (any device, checked against the others).
void float_tensor(const OpCheck& c, const char* name, const Tensor& t) {
  if (!t.defined()) c.fail(absl::StrCat(name, " is undefined"));
  if (!is_float(t)) c.fail(absl::StrCat(name, " must be f32 or bf16, got ", t.describe()));
  c.tensor(name, t, t.dtype());
}

// The result's dtype: f32 for f32 operands, f32 or bf16 for bf16 operands.
void result_tensor(const OpCheck& c, const char* name, const Tensor& t, DType operands,
                   const Shape& shape) {
  float_tensor(c, name, t);
  if (operands == DType::f32 && t.dtype() != DType::f32) {
    c.fail(absl::StrCat(name, " must be f32 for f32 operands, got ", t.describe()));
  }
  c.tensor(name, t, t.dtype(), shape);
}

// The shape of x with its last dimension replaced.
Shape with_last(const Shape& x, int64_t last) {
  Shape s = x;
  s.back() = last;
  return s;
}

#if TESSERA_WITH_CUDA
// linear_forward on CUDA. f32 y: bias broadcast into y, then the product accumulates onto it
// (beta = 1), as on the CPU. bf16 y: the product is written, then the bias added in f32 and
// rounded (two roundings; oneDNN on the CPU rounds once).
void linear_forward_cuda(const cpu::GemmShape& s, const Tensor& x, const Tensor& weight,
                         const Tensor& bias, const Tensor& y, cudaStream_t stream) {
  const bool f32_bias_first = bias.defined() && y.dtype() == DType::f32;
  if (f32_bias_first) {
    cuda::broadcast_rows(bias.raw_data(), bias.dtype(), s.m, s.n, y.data<float>(), stream);
  }
  const float beta = f32_bias_first ? 1.0f : 0.0f;
  if (x.dtype() == DType::f32) {
    cuda::gemm_f32(s, 1.0f, x.data<float>(), weight.data<float>(), beta, y.data<float>(), stream);
    return;
  }
  cuda::gemm_bf16(s, 1.0f, x.data<bf16>(), weight.data<bf16>(), beta, y.raw_data(), y.dtype(),
                  stream);
  if (bias.defined() && y.dtype() == DType::bf16) {
    cuda::add_rows_bf16(bias.raw_data(), bias.dtype(), s.m, s.n, y.data<bf16>(), stream);
  }
}

// linear_backward on CUDA: the same products and dtype rules as the CPU path below.
void linear_backward_cuda(const cpu::GemmShape& dx_shape, const cpu::GemmShape& dw_shape,
                          const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& dx,
                          const Tensor& dweight, const Tensor& dbias, Device device,
                          cudaStream_t stream) {
  const int64_t rows = dx_shape.m, out_f = dw_shape.m;
  if (x.dtype() == DType::f32) {
    if (dx.defined()) {
      cuda::gemm_f32(dx_shape, 1.0f, dy.data<float>(), weight.data<float>(), 0.0f, dx.data<float>(),
                     stream);
    }
    if (dweight.defined()) {
      cuda::gemm_f32(dw_shape, 1.0f, dy.data<float>(), x.data<float>(), 1.0f, dweight.data<float>(),
                     stream);
    }
    if (dbias.defined()) {
      cuda::column_sums_add(dy.data<float>(), rows, out_f, dbias.data<float>(), stream);
    }
    return;
  }
  // Freed at return: the caching allocator's blocks are used on this one stream, so a later
  // allocation of the block is ordered after these kernels.
  Tensor dy16 = dy;
  if (dy.dtype() == DType::f32) {
    dy16 = Tensor::empty(dy.shape(), DType::bf16, device);
    cuda::convert(dy.data<float>(), dy16.data<bf16>(), dy.numel(), stream);
  }
  if (dx.defined()) {
    cuda::gemm_bf16(dx_shape, 1.0f, dy16.data<bf16>(), weight.data<bf16>(), 0.0f, dx.raw_data(),
                    dx.dtype(), stream);
  }
  if (dweight.defined()) {
    cuda::gemm_bf16(dw_shape, 1.0f, dy16.data<bf16>(), x.data<bf16>(), 1.0f, dweight.raw_data(),
                    DType::f32, stream);
  }
  if (dbias.defined()) {
    if (dy.dtype() == DType::f32) {
      cuda::column_sums_add(dy.data<float>(), rows, out_f, dbias.data<float>(), stream);
    } else {
      cuda::column_sums_add(dy.data<bf16>(), rows, out_f, dbias.data<float>(), stream);
    }
  }
}
#endif

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b,
            float alpha, float beta) {
  TESSERA_PROFILE("matmul");
  OpCheck c("matmul");
  float_tensor(c, "a", a);
  c.tensor("b", b, a.dtype());
  c.expect((a.ndim() == 2 || a.ndim() == 3) && b.ndim() == a.ndim(),
           absl::StrCat("a and b must both be 2-D or both 3-D, got a ", a.describe(), " and b ",
                        b.describe()));
  const int64_t batch = a.ndim() == 3 ? a.dim(0) : 1;
  const int64_t m = trans_a ? a.dim(-1) : a.dim(-2), k = trans_a ? a.dim(-2) : a.dim(-1);
  const int64_t kb = trans_b ? b.dim(-1) : b.dim(-2), n = trans_b ? b.dim(-2) : b.dim(-1);
  const std::string both = absl::StrCat("a ", a.describe(), trans_a ? " (transposed)" : "",
                                        " and b ", b.describe(), trans_b ? " (transposed)" : "");
  c.expect(a.ndim() == 2 || b.dim(0) == batch, "batch sizes differ: " + both);
  c.expect(k == kb, absl::StrCat("inner dimensions differ (", k, " vs ", kb, "): ", both));
  Shape out_shape = a.ndim() == 3 ? Shape{batch, m, n} : Shape{m, n};
  result_tensor(c, "out", out, a.dtype(), out_shape);

  const cpu::GemmShape s{batch, m, n, k, trans_a, trans_b};
  if (!c.device().is_cpu()) {
    if (a.dtype() == DType::f32) {
      TESSERA_CUDA_LAUNCH(c, cuda::gemm_f32(s, alpha, a.data<float>(), b.data<float>(), beta,
                                            out.data<float>(), stream_for(c)));
    } else {
      TESSERA_CUDA_LAUNCH(c, cuda::gemm_bf16(s, alpha, a.data<bf16>(), b.data<bf16>(), beta,
                                             out.raw_data(), out.dtype(), stream_for(c)));
    }
    return;
  }
  if (a.dtype() == DType::f32) {
    cpu::gemm_f32(s, alpha, a.data<float>(), b.data<float>(), beta, out.data<float>());
  } else {
    cpu::gemm_bf16(s, alpha, a.data<bf16>(), b.data<bf16>(), beta, out.raw_data(), out.dtype());
  }
}

void linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y) {
  TESSERA_PROFILE("matmul");
  OpCheck c("linear_forward");
  float_tensor(c, "x", x);
  c.tensor_ndim("weight", weight, x.dtype(), 2);
  const int64_t out_f = weight.dim(0), in_f = weight.dim(1);
  c.expect(x.ndim() >= 1 && x.dim(-1) == in_f,
           absl::StrCat("x ", x.describe(), " must end in in_features ", in_f, " of weight ",
                        weight.describe()));
  if (bias.defined()) {
    if (x.dtype() == DType::f32) {
      c.tensor("bias", bias, DType::f32, {out_f});
    } else {
      float_tensor(c, "bias", bias);
      c.tensor("bias", bias, bias.dtype(), {out_f});
    }
  }
  result_tensor(c, "y", y, x.dtype(), with_last(x.shape(), out_f));

  const int64_t rows = in_f ? x.numel() / in_f : y.numel() / std::max<int64_t>(out_f, 1);
  const cpu::GemmShape s{1, rows, out_f, in_f, false, /*trans_b=*/true};
  if (!c.device().is_cpu()) {
    TESSERA_CUDA_LAUNCH(c, linear_forward_cuda(s, x, weight, bias, y, stream_for(c)));
    return;
  }
  if (x.dtype() == DType::f32) {
    // Bias first, then the product accumulates onto it (beta = 1): no second pass over y.
    if (bias.defined()) cpu::broadcast_rows(bias.data<float>(), rows, out_f, y.data<float>());
    cpu::gemm_f32(s, 1.0f, x.data<float>(), weight.data<float>(), bias.defined() ? 1.0f : 0.0f,
                  y.data<float>());
  } else {
    cpu::gemm_bf16(s, 1.0f, x.data<bf16>(), weight.data<bf16>(), 0.0f, y.raw_data(), y.dtype(),
                   bias.defined() ? bias.raw_data() : nullptr,
                   bias.defined() ? bias.dtype() : DType::f32);
  }
}

void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& dx,
                     const Tensor& dweight, const Tensor& dbias) {
  TESSERA_PROFILE("matmul");
  OpCheck c("linear_backward");
  float_tensor(c, "x", x);
  c.tensor_ndim("weight", weight, x.dtype(), 2);
  const int64_t out_f = weight.dim(0), in_f = weight.dim(1);
  c.expect(x.ndim() >= 1 && x.dim(-1) == in_f,
           absl::StrCat("x ", x.describe(), " must end in in_features ", in_f, " of weight ",
                        weight.describe()));
  float_tensor(c, "dy", dy);
  if (x.dtype() == DType::f32) c.tensor("dy", dy, DType::f32);
  c.tensor("dy", dy, dy.dtype(), with_last(x.shape(), out_f));
  if (dx.defined()) result_tensor(c, "dx", dx, x.dtype(), x.shape());
  if (dweight.defined()) c.tensor("dweight", dweight, DType::f32, weight.shape());
  if (dbias.defined()) c.tensor("dbias", dbias, DType::f32, {out_f});

  const int64_t rows = in_f ? x.numel() / in_f : dy.numel() / std::max<int64_t>(out_f, 1);
  // dx (rows, in) = dy (rows, out) @ weight (out, in)
  const cpu::GemmShape dx_shape{1, rows, in_f, out_f, false, false};
  // dweight (out, in) += dy^T (out, rows) @ x (rows, in)
  const cpu::GemmShape dw_shape{1, out_f, in_f, rows, /*trans_a=*/true, false};
  if (!c.device().is_cpu()) {
    TESSERA_CUDA_LAUNCH(c, linear_backward_cuda(dx_shape, dw_shape, dy, x, weight, dx, dweight,
                                                dbias, c.device(), stream_for(c)));
    return;
  }
  if (x.dtype() == DType::f32) {
    if (dx.defined()) {
      cpu::gemm_f32(dx_shape, 1.0f, dy.data<float>(), weight.data<float>(), 0.0f, dx.data<float>());
    }
    if (dweight.defined()) {
      cpu::gemm_f32(dw_shape, 1.0f, dy.data<float>(), x.data<float>(), 1.0f, dweight.data<float>());
    }
    if (dbias.defined()) cpu::column_sums_add(dy.data<float>(), rows, out_f, dbias.data<float>());
    return;
  }
  Tensor dy16 = dy;
  if (dy.dtype() == DType::f32) {
    dy16 = Tensor::empty(dy.shape(), DType::bf16);
    cpu::convert(dy.data<float>(), dy16.data<bf16>(), dy.numel());
  }
  if (dx.defined()) {
    cpu::gemm_bf16(dx_shape, 1.0f, dy16.data<bf16>(), weight.data<bf16>(), 0.0f, dx.raw_data(),
                   dx.dtype());
  }
  if (dweight.defined()) {
    cpu::gemm_bf16(dw_shape, 1.0f, dy16.data<bf16>(), x.data<bf16>(), 1.0f, dweight.raw_data(),
                   DType::f32);
  }
  if (dbias.defined()) {
    if (dy.dtype() == DType::f32) {
      cpu::column_sums_add(dy.data<float>(), rows, out_f, dbias.data<float>());
    } else {
      cpu::column_sums_add(dy.data<bf16>(), rows, out_f, dbias.data<float>());
    }
  }
}

void convert(const Tensor& src, const Tensor& dst) {
  TESSERA_PROFILE("matmul");
  OpCheck c("convert");
  float_tensor(c, "src", src);
  float_tensor(c, "dst", dst);
  c.expect(src.numel() == dst.numel(),
           absl::StrCat("dst ", dst.describe(), " must have ", src.numel(), " elements like src ",
                        src.describe()));
  if (src.dtype() == dst.dtype()) {
    copy(src, dst);  // any device
  } else if (!c.device().is_cpu()) {
    if (src.dtype() == DType::f32) {
      TESSERA_CUDA_LAUNCH(
          c, cuda::convert(src.data<float>(), dst.data<bf16>(), src.numel(), stream_for(c)));
    } else {
      TESSERA_CUDA_LAUNCH(
          c, cuda::convert(src.data<bf16>(), dst.data<float>(), src.numel(), stream_for(c)));
    }
  } else if (src.dtype() == DType::f32) {
    cpu::convert(src.data<float>(), dst.data<bf16>(), src.numel());
  } else {
    cpu::convert(src.data<bf16>(), dst.data<float>(), src.numel());
  }
}

}  // namespace tessera::ops
