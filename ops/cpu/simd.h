#pragma once
// CPU kernel helpers. The build targets baseline x86-64 unless TESSERA_NATIVE is on, so hot
// loops are compiled three times (AVX-512, AVX2+FMA, baseline) and picked at load time by the
// CPU's features (GCC function multiversioning). Put TESSERA_CPU_CLONES on a serial inner
// function and call it from the OpenMP loop: the OpenMP-outlined body would not inherit the
// clone's target.

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && !defined(__clang__)
#define TESSERA_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TESSERA_CPU_CLONES
#endif

namespace tessera::ops::cpu {

// exp(x) for float, written so that it vectorises (glibc's vector expf needs -ffast-math, which
// would also remove NaN checks elsewhere). Cody-Waite range reduction to [-ln2/2, ln2/2] and a
// degree-6 polynomial: max relative error about 2 ulp on [-87, 88]; below that it returns 0.
inline __attribute__((always_inline)) float fast_exp(float x) {
  // Clamps as comparisons, not std::fmin/std::fmax: GCC vectorises those calls only under
  // -ffinite-math-only, so they kept every loop calling fast_exp scalar. NaN passes through.
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  const bool underflow = x < -87.33654475f;
  x = underflow ? -87.33654475f : x;
  const float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return underflow ? 0.0f : p * scale;
}

}  // namespace tessera::ops::cpu
