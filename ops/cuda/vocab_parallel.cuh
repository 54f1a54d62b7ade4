#pragma once
// CUDA launchers for ops/vocab_parallel.h: raw device pointers; n rows, v = V_local columns
// [begin, begin + v) of the (padded) vocabulary, the first `cols` of them real (the rest padding:
// skipped by the reductions, zero in dlogits). Id and target values are checked on the host by the
// adapter (ops/vocab_parallel.cc) from a host copy, which the launchers that need host-side
// information (backward grouping, the count of valid rows) take as well.

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

void vocab_embedding_forward(const int32_t* ids, const float* table, float* out, int64_t n,
                             int64_t v_local, int64_t c, int64_t begin, cudaStream_t stream);
// dtable accumulated in position order per row (host_ids: a host copy of ids), no atomics.
void vocab_embedding_backward(const float* dout, const int32_t* host_ids, float* dtable, int64_t n,
                              int64_t v_local, int64_t c, int64_t begin, cudaStream_t stream);
void vocab_ce_row_max(const float* logits, float* row_max, int64_t n, int64_t v, int64_t cols,
                      cudaStream_t stream);
void vocab_ce_sum_exp_target(const float* logits, const int32_t* targets, const float* row_max,
                             float* sum_exp, float* target_logit, float* row_sum, int64_t n,
                             int64_t v, int64_t cols, int64_t begin, cudaStream_t stream);
// lse = row_max + log(sum_exp); loss[0] = mean over valid rows (valid: the host's count) of
// lse - (1 - smoothing) target_logit - smoothing / vocab * row_sum, in row order in double.
void vocab_ce_loss(const float* row_max, const float* sum_exp, const float* target_logit,
                   const int32_t* targets, float* lse, float* loss, int64_t n, int64_t valid,
                   int ignore_index, float smoothing, const float* row_sum, int64_t vocab,
                   cudaStream_t stream);
// `scale` = dloss / (number of valid rows), computed by the adapter from its host copy.
void vocab_ce_backward(const float* logits, const int32_t* targets, const float* lse,
                       float* dlogits, int64_t n, int64_t v, int64_t cols, int64_t begin,
                       float scale, int ignore_index, float smoothing, int64_t vocab,
                       cudaStream_t stream);

}  // namespace tessera::ops::cuda
