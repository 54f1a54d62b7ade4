#pragma once
// CPU kernel helpers. The build targets baseline x86-64 unless TESSERA_NATIVE is on, so hot
// loops are compiled three times and the path is picked at run time (ops/cpu/isa.h: the CPU's
// best, or a lower one forced by TESSERA_CPU_ISA):
//
//   TESSERA_CPU_KERNEL(void, scale_rows, (const float* x, float* y, int64_t n), (x, y, n)) {
//     ... body; the template parameter kIsa says which path it is compiled for ...
//   }
//
// defines scale_rows(x, y, n), which calls the AVX-512, AVX2 or baseline build of the body. The
// body is an always-inline template, so everything it inlines (fast_exp, the attention GEMM) is
// compiled for that target, and it can choose vector widths and register blocking by kIsa
// (SimdTraits below). Put a kernel on a serial inner function and call it from the OpenMP loop:
// an OpenMP-outlined body would not inherit the target. Functions it calls without inlining
// (std::vector, libm) stay baseline code, so no AVX-512 instruction leaks into shared code.

#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/cpu/isa.h"

#define TESSERA_ALWAYS_INLINE inline __attribute__((always_inline))

#if defined(__x86_64__) && !defined(__clang__)
#define TESSERA_CPU_KERNEL(ret, name, params, args)                              \
  template <::tessera::ops::cpu::CpuIsa kIsa>                                    \
  TESSERA_ALWAYS_INLINE ret name##_body params;                                  \
  __attribute__((target("arch=x86-64-v4"), noinline)) ret name##_avx512 params { \
    return name##_body<::tessera::ops::cpu::CpuIsa::kAvx512> args;               \
  }                                                                              \
  __attribute__((target("arch=x86-64-v3"), noinline)) ret name##_avx2 params {   \
    return name##_body<::tessera::ops::cpu::CpuIsa::kAvx2> args;                 \
  }                                                                              \
  __attribute__((noinline)) ret name##_baseline params {                         \
    return name##_body<::tessera::ops::cpu::CpuIsa::kBaseline> args;             \
  }                                                                              \
  ret name params {                                                              \
    switch (::tessera::ops::cpu::cpu_isa()) {                                    \
      case ::tessera::ops::cpu::CpuIsa::kAvx512:                                 \
        return name##_avx512 args;                                               \
      case ::tessera::ops::cpu::CpuIsa::kAvx2:                                   \
        return name##_avx2 args;                                                 \
      default:                                                                   \
        return name##_baseline args;                                             \
    }                                                                            \
  }                                                                              \
  template <::tessera::ops::cpu::CpuIsa kIsa>                                    \
  TESSERA_ALWAYS_INLINE ret name##_body params
#else
// Other compilers and architectures: one portable build of each kernel.
#define TESSERA_CPU_KERNEL(ret, name, params, args)                  \
  template <::tessera::ops::cpu::CpuIsa kIsa>                        \
  TESSERA_ALWAYS_INLINE ret name##_body params;                      \
  ret name params {                                                  \
    return name##_body<::tessera::ops::cpu::CpuIsa::kBaseline> args; \
  }                                                                  \
  template <::tessera::ops::cpu::CpuIsa kIsa>                        \
  TESSERA_ALWAYS_INLINE ret name##_body params
#endif

namespace tessera::ops::cpu {

// Vector registers of each path: lanes of f32 per register and how many registers there are.
// Register-blocked kernels (attention_tile.h) size their accumulator blocks from these.
template <CpuIsa kIsa>
struct SimdTraits {
  static constexpr int kLanes = kIsa == CpuIsa::kAvx512 ? 16 : kIsa == CpuIsa::kAvx2 ? 8 : 4;
  static constexpr int kRegisters = kIsa == CpuIsa::kAvx512 ? 32 : 16;
};

// exp(x) for float, written so that it vectorises on every path (glibc's vector expf needs
// -ffast-math, which would also remove NaN checks elsewhere). Cody-Waite range reduction to
// [-ln2/2, ln2/2] and a degree-6 polynomial: max relative error about 2 ulp on [-87, 88]; below
// that it returns 0.
//
// Every operation is unconditional and the end is a select: with a conditional multiply
// (`underflow ? 0 : p * scale`) GCC may not evaluate the multiply for all lanes under the default
// -ftrapping-math unless the target has masked instructions, so only the AVX-512 build was
// vectorised and the AVX2 build of every loop calling fast_exp ran scalar (GELU 10x slower).
// The rounding to an integer adds and subtracts 1.5 * 2^23 instead of std::nearbyint, which
// needs SSE4.1 to vectorise (the baseline build has SSE2 only).
//
// fast_exp_nonpositive is the same for arguments that cannot overflow (x <= 88.37, e.g. -x^2/2):
// it skips the upper clamp, whose compare and blend made the exact GELU's loop (which needs
// exp(-x^2/2) only) 1.2x slower on AVX-512 and 1.35x on AVX2.
inline __attribute__((always_inline)) float fast_exp_nonpositive(float x) {
  // The clamp as a comparison, not std::fmax: GCC vectorises that call only under
  // -ffinite-math-only, so it kept every loop calling fast_exp scalar. NaN passes through.
  const bool underflow = x < -87.33654475f;
  x = underflow ? -87.33654475f : x;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: t + kRound rounds t to an integer
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  const float y = p * scale;
  return underflow ? 0.0f : y;
}

inline __attribute__((always_inline)) float fast_exp(float x) {
  x = x > 88.3762626647949f ? 88.3762626647949f : x;  // a comparison, like the lower clamp
  return fast_exp_nonpositive(x);
}

}  // namespace tessera::ops::cpu
