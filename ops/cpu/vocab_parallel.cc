// Own kernels (no oneDNN primitive masks rows by an id range or splits a softmax over ranks).
// Simple row loops: the heavy work of a vocab-parallel head is its matmul, not these passes.
#include "ops/cpu/vocab_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

namespace tessera::ops::cpu {
namespace {

constexpr int64_t kColumnUnit = 16;  // one cache line of dtable per thread unit

int64_t grain_for(int64_t width) {
  return std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, width));
}

}  // namespace

void vocab_embedding_forward(const int32_t* ids, const float* table, float* out, int64_t n,
                             int64_t v_local, int64_t c, int64_t begin, int64_t vocab) {
  for (int64_t i = 0; i < n; ++i) {
    TESSERA_CHECK(ids[i] >= 0 && ids[i] < vocab, "vocab_embedding_forward: id ", ids[i],
                  " at position ", i, " is outside [0, ", vocab, ")");
  }
  if (c == 0) return;
  parallel_chunks(n, grain_for(c), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t local = int64_t(ids[i]) - begin;
      if (local >= 0 && local < v_local) {
        std::memcpy(out + i * c, table + local * c, size_t(c) * sizeof(float));
      } else {
        std::fill(out + i * c, out + (i + 1) * c, 0.0f);
      }
    }
  });
}

void vocab_embedding_backward(const float* dout, const int32_t* ids, float* dtable, int64_t n,
                              int64_t v_local, int64_t c, int64_t begin) {
  // Threads own column ranges (as ops/cpu/embedding.cc): each dtable element is updated by one
  // thread, in position order, so the result does not depend on the thread count.
  const int64_t units = (c + kColumnUnit - 1) / kColumnUnit;
  parallel_chunks(units, grain_for(n * kColumnUnit), [&](int64_t u0, int64_t u1) {
    const int64_t c0 = u0 * kColumnUnit, c1 = std::min(c, u1 * kColumnUnit);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t local = int64_t(ids[i]) - begin;
      if (local < 0 || local >= v_local) continue;
      const float* src = dout + i * c;
      float* dst = dtable + local * c;
#pragma omp simd
      for (int64_t j = c0; j < c1; ++j) dst[j] += src[j];
    }
  });
}

void vocab_ce_row_max(const float* logits, float* row_max, int64_t n, int64_t v, int64_t cols) {
  parallel_chunks(n, grain_for(v), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const float* x = logits + i * v;
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < cols; ++j) m = x[j] > m ? x[j] : m;
      row_max[i] = m;
    }
  });
}

void vocab_ce_sum_exp_target(const float* logits, const int32_t* targets, const float* row_max,
                             float* sum_exp, float* target_logit, int64_t n, int64_t v,
                             int64_t cols, int64_t begin, float* row_sum) {
  parallel_chunks(n, grain_for(v), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const float* x = logits + i * v;
      const float m = row_max[i];
      double s = 0;  // double, as ops/cpu/cross_entropy.cc's row_lse
      for (int64_t j = 0; j < cols; ++j) s += fast_exp(x[j] - m);
      sum_exp[i] = float(s);
      const int64_t t = int64_t(targets[i]) - begin;
      target_logit[i] = t >= 0 && t < cols ? x[t] : 0.0f;
      if (row_sum) {
        double total = 0;
        for (int64_t j = 0; j < cols; ++j) total += x[j];
        row_sum[i] = float(total);
      }
    }
  });
}

void vocab_ce_loss(const float* row_max, const float* sum_exp, const float* target_logit,
                   const int32_t* targets, float* lse, float* loss, int64_t n, int64_t vocab,
                   int ignore_index, float smoothing, const float* row_sum) {
  // Summed in row order, in double: the same for any thread count.
  double sum = 0;
  int64_t valid = 0;
  for (int64_t i = 0; i < n; ++i) {
    lse[i] = row_max[i] + std::log(sum_exp[i]);
    const int32_t t = targets[i];
    if (t == ignore_index) continue;
    TESSERA_CHECK(t >= 0 && t < vocab, "vocab_ce_loss: target ", t, " at row ", i,
                  " is outside [0, ", vocab, ") and is not ignore_index ", ignore_index);
    double dot = double(target_logit[i]);
    if (smoothing != 0) {
      dot = (1 - double(smoothing)) * dot + double(smoothing) / double(vocab) * double(row_sum[i]);
    }
    sum += double(lse[i]) - dot;
    ++valid;
  }
  loss[0] = valid > 0 ? float(sum / double(valid)) : 0.0f;
}

void vocab_ce_backward(const float* logits, const int32_t* targets, const float* lse,
                       float* dlogits, int64_t n, int64_t v, int64_t cols, int64_t begin,
                       float dloss, int ignore_index, float smoothing, int64_t vocab) {
  int64_t valid = 0;
  for (int64_t i = 0; i < n; ++i) valid += targets[i] != ignore_index;
  const float scale = valid > 0 ? float(double(dloss) / double(valid)) : 0.0f;
  const float keep = scale * (1.0f - smoothing), spread = scale * smoothing / float(vocab);
  parallel_chunks(n, grain_for(v), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const float* x = logits + i * v;
      float* dx = dlogits + i * v;
      if (targets[i] == ignore_index) {
        std::fill(dx, dx + v, 0.0f);
        continue;
      }
      const float l = lse[i];
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) dx[j] = scale * fast_exp(x[j] - l);
      if (spread != 0) {
        for (int64_t j = 0; j < cols; ++j) dx[j] -= spread;
      }
      std::fill(dx + cols, dx + v, 0.0f);  // padding takes no part in the loss
      const int64_t t = int64_t(targets[i]) - begin;
      if (t >= 0 && t < cols) dx[t] -= keep;
    }
  });
}

}  // namespace tessera::ops::cpu
