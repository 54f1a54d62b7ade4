#pragma once
// bfloat16 and float16 as 16-bit storage types with float conversion. Conversion rounds to
// nearest even, as PyTorch and the AVX512-BF16 instructions do.

#include <bit>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#if defined(__clang__) && __clang_major__ < 15
#include <immintrin.h>  // F16C: see f16_to_float
#endif

namespace tessera {

struct bf16 {
  uint16_t bits = 0;
};
struct f16 {
  uint16_t bits = 0;
};
template <>
struct DTypeOf<bf16> {
  static constexpr DType value = DType::bf16;
};
template <>
struct DTypeOf<f16> {
  static constexpr DType value = DType::f16;
};

inline bf16 float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x40)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{uint16_t(u >> 16)};
}

inline float bf16_to_float(bf16 h) {
  uint32_t u = uint32_t(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

#if defined(__clang__) && __clang_major__ < 15
// clang 14 (Debian's, which builds the fuzzing harnesses, tests/fuzz) has no _Float16 on x86
// without AVX512-FP16. The F16C instructions convert identically (IEEE, round to nearest even;
// checked equal to GCC's _Float16 on all 65,536 halves and 20 million random floats, NaNs
// included); that build passes -mf16c.
inline float f16_to_float(f16 h) { return _cvtsh_ss(h.bits); }
inline f16 float_to_f16(float f) {
  return f16{uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT))};
}
#else
inline float f16_to_float(f16 h) {
  return static_cast<float>(std::bit_cast<_Float16>(h.bits));
}
inline f16 float_to_f16(float f) {
  return f16{std::bit_cast<uint16_t>(static_cast<_Float16>(f))};
}
#endif

}  // namespace tessera
