// Adapters for ops/activation.h: check dtypes, shapes and devices, then dispatch. Every
// activation checks and dispatches alike; only its kernels differ.
#include "ops/activation.h"

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/activation.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/activation.cuh"
#endif

namespace tessera::ops {
namespace {

// One activation: its profiler family, its op names in errors, its launchers on each device.
struct Kernels {
  const char* family;
  const char* forward_op;
  const char* backward_op;
  void (*cpu_forward)(const float* x, float* y, int64_t n);
  void (*cpu_backward)(const float* dy, const float* x, float* dx, int64_t n);
#if TESSERA_WITH_CUDA
  void (*cuda_forward)(const float* x, float* y, int64_t n, cudaStream_t stream);
  void (*cuda_backward)(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t stream);
#endif
};

// The profiler's family names are as before the activations shared a file: "activation" for
// GELU, "silu" for SiLU.
// clang-format off
constexpr Kernels kGelu{"activation", "gelu_forward", "gelu_backward",
                        cpu::gelu_forward, cpu::gelu_backward,
#if TESSERA_WITH_CUDA
                        cuda::gelu_forward, cuda::gelu_backward,
#endif
};
constexpr Kernels kGeluErf{"gelu_erf", "gelu_erf_forward", "gelu_erf_backward",
                           cpu::gelu_erf_forward, cpu::gelu_erf_backward,
#if TESSERA_WITH_CUDA
                           cuda::gelu_erf_forward, cuda::gelu_erf_backward,
#endif
};
constexpr Kernels kQuickGelu{"quick_gelu", "quick_gelu_forward", "quick_gelu_backward",
                             cpu::quick_gelu_forward, cpu::quick_gelu_backward,
#if TESSERA_WITH_CUDA
                             cuda::quick_gelu_forward, cuda::quick_gelu_backward,
#endif
};
constexpr Kernels kSilu{"silu", "silu_forward", "silu_backward",
                        cpu::silu_forward, cpu::silu_backward,
#if TESSERA_WITH_CUDA
                        cuda::silu_forward, cuda::silu_backward,
#endif
};
// clang-format on

// Templates on the activation, so that each has its own profiler registration (a static per
// instantiation).
template <const Kernels& k>
void forward(const Tensor& x, const Tensor& y) {
  TESSERA_PROFILE(k.family);
  OpCheck c(k.forward_op);
  c.tensor("x", x, DType::f32).tensor("y", y, DType::f32, x.shape());
  if (c.device().is_cpu()) {
    k.cpu_forward(x.data<float>(), y.data<float>(), x.numel());
  } else {
    TESSERA_CUDA_LAUNCH(c,
                        k.cuda_forward(x.data<float>(), y.data<float>(), x.numel(), stream_for(c)));
  }
}

template <const Kernels& k>
void backward(const Tensor& dy, const Tensor& x, const Tensor& dx) {
  TESSERA_PROFILE(k.family);
  OpCheck c(k.backward_op);
  c.tensor("x", x, DType::f32)
      .tensor("dy", dy, DType::f32, x.shape())
      .tensor("dx", dx, DType::f32, x.shape());
  if (c.device().is_cpu()) {
    k.cpu_backward(dy.data<float>(), x.data<float>(), dx.data<float>(), x.numel());
  } else {
    TESSERA_CUDA_LAUNCH(c, k.cuda_backward(dy.data<float>(), x.data<float>(), dx.data<float>(),
                                           x.numel(), stream_for(c)));
  }
}

}  // namespace

void gelu_forward(const Tensor& x, const Tensor& y) {
  forward<kGelu>(x, y);
}
void gelu_erf_forward(const Tensor& x, const Tensor& y) {
  forward<kGeluErf>(x, y);
}
void quick_gelu_forward(const Tensor& x, const Tensor& y) {
  forward<kQuickGelu>(x, y);
}
void silu_forward(const Tensor& x, const Tensor& y) {
  forward<kSilu>(x, y);
}

void gelu_backward(const Tensor& dy, const Tensor& x, const Tensor& dx) {
  backward<kGelu>(dy, x, dx);
}
void gelu_erf_backward(const Tensor& dy, const Tensor& x, const Tensor& dx) {
  backward<kGeluErf>(dy, x, dx);
}
void quick_gelu_backward(const Tensor& dy, const Tensor& x, const Tensor& dx) {
  backward<kQuickGelu>(dy, x, dx);
}
void silu_backward(const Tensor& dy, const Tensor& x, const Tensor& dx) {
  backward<kSilu>(dy, x, dx);
}

void activation_forward(Activation a, const Tensor& x, const Tensor& y) {
  switch (a) {
    case Activation::kGeluTanh:
      return gelu_forward(x, y);
    case Activation::kGeluErf:
      return gelu_erf_forward(x, y);
    case Activation::kQuickGelu:
      return quick_gelu_forward(x, y);
  }
  throw_error(absl::StrCat("activation_forward: unknown activation ", int(a)));
}

void activation_backward(Activation a, const Tensor& dy, const Tensor& x, const Tensor& dx) {
  switch (a) {
    case Activation::kGeluTanh:
      return gelu_backward(dy, x, dx);
    case Activation::kGeluErf:
      return gelu_erf_backward(dy, x, dx);
    case Activation::kQuickGelu:
      return quick_gelu_backward(dy, x, dx);
  }
  throw_error(absl::StrCat("activation_backward: unknown activation ", int(a)));
}

}  // namespace tessera::ops
