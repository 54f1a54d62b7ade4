#include "ops/cpu/contrastive.h"

#include <cmath>
#include <vector>

#include "ops/cpu/parallel.h"

namespace tessera::ops::cpu {
namespace {

// Rows per chunk: these matrices are small (batch x batch, batch x embed), so thread only when
// a chunk has real work.
int64_t row_grain(int64_t cols) {
  return std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(cols, 1));
}

// log(1 + exp(u)) without overflow. Scalar libm in double: the loss sums Bi*Bt of these and
// its precision sets how well the loss matches the reference; at batch x batch elements it is
// not a hot loop next to the towers' matmuls.
inline double softplus(double u) {
  return std::max(u, 0.0) + std::log1p(std::exp(-std::abs(u)));
}

inline double sigmoid(double u) {
  return u >= 0 ? 1.0 / (1.0 + std::exp(-u)) : std::exp(u) / (1.0 + std::exp(u));
}

}  // namespace

void l2_normalize_forward(const float* x, float* y, float* norm, int64_t n, int64_t e, float eps) {
  parallel_chunks(n, row_grain(e), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * e;
      double ss = 0;
      for (int64_t k = 0; k < e; ++k) ss += double(xr[k]) * xr[k];
      const float d = std::max(float(std::sqrt(ss)), eps);
      norm[r] = d;
      const float inv = 1.0f / d;
      float* yr = y + r * e;
      for (int64_t k = 0; k < e; ++k) yr[k] = xr[k] * inv;
    }
  });
}

void l2_normalize_backward(const float* dy, const float* y, const float* norm, float* dx, int64_t n,
                           int64_t e, float eps) {
  parallel_chunks(n, row_grain(e), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* dyr = dy + r * e;
      const float* yr = y + r * e;
      float* dxr = dx + r * e;
      const float inv = 1.0f / norm[r];
      if (norm[r] <= eps) {  // clamped: y = x / eps is linear in x
        for (int64_t k = 0; k < e; ++k) dxr[k] = dyr[k] * inv;
        continue;
      }
      double dot = 0;
      for (int64_t k = 0; k < e; ++k) dot += double(yr[k]) * dyr[k];
      const float d = float(dot);
      for (int64_t k = 0; k < e; ++k) dxr[k] = (dyr[k] - yr[k] * d) * inv;
    }
  });
}

float sigmoid_pair_loss_forward(const float* logits, int64_t bi, int64_t bt, float bias,
                                int64_t offset) {
  std::vector<double> rows(bi);
  parallel_chunks(bi, row_grain(bt), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const float* l = logits + i * bt;
      double s = 0;
      for (int64_t j = 0; j < bt; ++j) {
        const double z = j == offset + i ? 1.0 : -1.0;
        s += softplus(-z * (double(l[j]) + bias));
      }
      rows[i] = s;
    }
  });
  double total = 0;
  for (double s : rows) total += s;
  return float(total / double(bi));
}

void sigmoid_pair_loss_backward(const float* logits, int64_t bi, int64_t bt, float bias,
                                int64_t offset, float dloss, float* dlogits) {
  const double g = double(dloss) / double(bi);
  parallel_chunks(bi, row_grain(bt), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const float* l = logits + i * bt;
      float* d = dlogits + i * bt;
      for (int64_t j = 0; j < bt; ++j) {
        const double z = j == offset + i ? 1.0 : -1.0;
        d[j] = float(g * -z * sigmoid(-z * (double(l[j]) + bias)));
      }
    }
  });
}

}  // namespace tessera::ops::cpu
