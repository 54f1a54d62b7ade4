// Own kernels: oneDNN's softmax primitive gives probabilities, not the fused loss with ignored
// rows and the (softmax - onehot) / n_valid gradient, which would need extra passes over the
// (N, V) logits. Here each kernel reads the logits once from memory.
#include "ops/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

// Logits per block of the online log-sum-exp: small enough that the second look at a block (the
// exp-sum after its max) hits L1, so a row of any length is read once from memory.
constexpr int64_t kBlock = 2048;

// Checks every target and returns how many are not ignore_index.
int64_t count_valid(const char* op, const int32_t* targets, int64_t n, int64_t v,
                    int ignore_index) {
  int64_t valid = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = targets[i];
    if (t == ignore_index) continue;
    TESSERA_CHECK(t >= 0 && t < v, op, ": target ", t, " at row ", i, " is outside [0, ", v,
                  ") and is not ignore_index ", ignore_index);
    ++valid;
  }
  return valid;
}

// Max over 16 independent lanes, written as selects: GCC leaves a `reduction(max)` over
// std::max scalar (one dependent maxss per element).
TESSERA_CPU_KERNEL(float, block_max, (const float* x, int64_t n), (x, n)) {
  constexpr int kLanes = 16;
  float lanes[kLanes];
  for (float& l : lanes) l = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) lanes[l] = x[j + l] > lanes[l] ? x[j + l] : lanes[l];
  }
  float m = -std::numeric_limits<float>::infinity();
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  for (float l : lanes) m = l > m ? l : m;
  return m;
}

// Sum of exp(x - m) over 16 lanes (an `omp simd reduction(+)` here kept its partial sums in
// memory and ran at a quarter of this speed).
TESSERA_CPU_KERNEL(float, block_exp_sum, (const float* x, int64_t n, float m), (x, n, m)) {
  constexpr int kLanes = 16;
  float lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) lanes[l] += fast_exp(x[j + l] - m);
  }
  float s = 0;
  for (; j < n; ++j) s += fast_exp(x[j] - m);
  for (float l : lanes) s += l;
  return s;
}

// log(sum_j exp(x_j)) in one pass over blocks: a running max m and sum s of exp(x - m), rescaled
// (one scalar exp) when a block raises the max.
float row_lse(const float* x, int64_t v) {
  float m = -std::numeric_limits<float>::infinity();
  double s = 0;
  for (int64_t j0 = 0; j0 < v; j0 += kBlock) {
    const int64_t len = std::min(kBlock, v - j0);
    const float bm = block_max(x + j0, len);
    if (bm > m) {
      s *= std::exp(double(m) - double(bm));  // m = -inf on the first block: s is 0 anyway
      m = bm;
    }
    s += block_exp_sum(x + j0, len, m);
  }
  return m + float(std::log(s));
}

// Row gradient, first part: scale * exp(x - lse) (the caller subtracts the targets).
TESSERA_CPU_KERNEL(void, row_softmax_scaled,
                   (const float* x, float lse, float scale, float* dx, int64_t v),
                   (x, lse, scale, dx, v)) {
#pragma omp simd
  for (int64_t j = 0; j < v; ++j) dx[j] = scale * fast_exp(x[j] - lse);
}

// Checks the mix targets of kept rows (soft targets with mixing).
void check_mix_targets(const char* op, const int32_t* targets, const SoftTargetPtrs& soft,
                       int64_t n, int64_t v, int ignore_index) {
  if (!soft.mix_targets) return;
  for (int64_t i = 0; i < n; ++i) {
    if (targets[i] == ignore_index) continue;
    const int32_t b = soft.mix_targets[i];
    TESSERA_CHECK(b >= 0 && b < v, op, ": mix target ", b, " at row ", i, " is outside [0, ", v,
                  ")");
  }
}

// sum_j y_j x_j of a kept row (ops/cross_entropy.h's SoftTargets), in double.
double target_dot(const float* x, int32_t t, int64_t i, int64_t cols, const SoftTargetPtrs& soft) {
  double hard = x[t];
  if (soft.mix_targets) {
    const double w = soft.weights[i];
    hard = w * x[t] + (1 - w) * x[soft.mix_targets[i]];
  }
  if (soft.smoothing == 0) return hard;
  double sum = 0;
  for (int64_t j = 0; j < cols; ++j) sum += x[j];
  return (1 - double(soft.smoothing)) * hard + double(soft.smoothing) / double(cols) * sum;
}

}  // namespace

void cross_entropy_forward(const float* logits, const int32_t* targets, float* loss, float* lse,
                           int64_t n, int64_t v, int64_t cols, int ignore_index,
                           const SoftTargetPtrs& soft) {
  // `cols`: the valid columns (the header's `valid`); a row's padding [cols, v) is never read.
  const int64_t valid = count_valid("cross_entropy_forward", targets, n, cols, ignore_index);
  check_mix_targets("cross_entropy_forward", targets, soft, n, cols, ignore_index);
  std::vector<float> row_loss(size_t(n), 0.0f);
  if (cols > 0) {
    parallel_chunks(n, std::max<int64_t>(1, kElementwiseGrain / cols), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const float* x = logits + i * v;
        lse[i] = row_lse(x, cols);
        if (targets[i] != ignore_index) {
          row_loss[i] = float(double(lse[i]) - target_dot(x, targets[i], i, cols, soft));
        }
      }
    });
  }
  // Summed in row order, in double: the same for any thread count.
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += row_loss[i];
  loss[0] = valid > 0 ? float(sum / double(valid)) : 0.0f;
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse,
                            float dloss, float* dlogits, int64_t n, int64_t v, int64_t cols,
                            int ignore_index, const SoftTargetPtrs& soft) {
  const int64_t valid = count_valid("cross_entropy_backward", targets, n, cols, ignore_index);
  check_mix_targets("cross_entropy_backward", targets, soft, n, cols, ignore_index);
  // y = keep * (w e_t + (1 - w) e_b) + spread on every valid column.
  const float keep = 1.0f - soft.smoothing;
  const float scale = valid > 0 ? float(double(dloss) / double(valid)) : 0.0f;
  if (v == 0) return;
  parallel_chunks(n, std::max<int64_t>(1, kElementwiseGrain / v), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      float* dx = dlogits + i * v;
      if (targets[i] == ignore_index) {
        std::fill(dx, dx + v, 0.0f);
      } else {
        row_softmax_scaled(logits + i * v, lse[i], scale, dx, cols);
        if (soft.smoothing != 0) {
          const float spread = scale * soft.smoothing / float(cols);
          for (int64_t j = 0; j < cols; ++j) dx[j] -= spread;
        }
        if (soft.mix_targets) {
          const float w = soft.weights[i];
          dx[targets[i]] -= scale * keep * w;
          dx[soft.mix_targets[i]] -= scale * keep * (1.0f - w);
        } else {
          dx[targets[i]] -= scale * keep;
        }
        std::fill(dx + cols, dx + v, 0.0f);  // padded columns take no part in the loss
      }
    }
  });
}

}  // namespace tessera::ops::cpu
