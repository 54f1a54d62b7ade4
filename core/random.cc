#include "core/random.h"

#include <cmath>

#include "core/philox.h"

namespace tessera {
namespace {

void check_fill(const char* op, const Tensor& t) {
  TESSERA_CHECK(t.dtype() == DType::f32 && t.device().is_cpu(), op,
                ": expects an f32 cpu tensor, got ", t.describe());
}

}  // namespace

void fill_uniform(const Tensor& t, uint64_t seed, uint64_t stream, float low, float high) {
  check_fill("fill_uniform", t);
  float* p = t.data<float>();
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t b = 0; b < (n + 3) / 4; ++b) {
    Philox4x32 r = philox_block(seed, stream, uint64_t(b));
    for (int j = 0; j < 4 && 4 * b + j < n; ++j) {
      p[4 * b + j] = low + (high - low) * philox_uniform(r.v[j]);
    }
  }
}

void fill_normal(const Tensor& t, uint64_t seed, uint64_t stream, float mean, float std) {
  check_fill("fill_normal", t);
  float* p = t.data<float>();
  const int64_t n = t.numel();
  constexpr float kTwoPi = 6.28318530717958647692f;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t b = 0; b < (n + 3) / 4; ++b) {
    Philox4x32 r = philox_block(seed, stream, uint64_t(b));
    for (int pair = 0; pair < 2; ++pair) {
      float radius = std::sqrt(-2.0f * std::log(philox_uniform_open0(r.v[2 * pair])));
      float angle = kTwoPi * philox_uniform(r.v[2 * pair + 1]);
      int64_t i = 4 * b + 2 * pair;
      if (i < n) p[i] = mean + std * radius * std::cos(angle);
      if (i + 1 < n) p[i + 1] = mean + std * radius * std::sin(angle);
    }
  }
}

}  // namespace tessera
