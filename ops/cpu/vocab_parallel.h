#pragma once
// CPU launchers for ops/vocab_parallel.h: raw pointers; n rows, v = V_local columns of which the
// first `cols` are real vocabulary (the rest padding; the adapter derives cols from begin and V).

#include <cstdint>

namespace tessera::ops::cpu {

void vocab_embedding_forward(const int32_t* ids, const float* table, float* out, int64_t n,
                             int64_t v_local, int64_t c, int64_t begin, int64_t vocab);
void vocab_embedding_backward(const float* dout, const int32_t* ids, float* dtable, int64_t n,
                              int64_t v_local, int64_t c, int64_t begin);
void vocab_ce_row_max(const float* logits, float* row_max, int64_t n, int64_t v, int64_t cols);
void vocab_ce_sum_exp_target(const float* logits, const int32_t* targets, const float* row_max,
                             float* sum_exp, float* target_logit, int64_t n, int64_t v,
                             int64_t cols, int64_t begin, float* row_sum = nullptr);
void vocab_ce_loss(const float* row_max, const float* sum_exp, const float* target_logit,
                   const int32_t* targets, float* lse, float* loss, int64_t n, int64_t vocab,
                   int ignore_index, float smoothing = 0, const float* row_sum = nullptr);
void vocab_ce_backward(const float* logits, const int32_t* targets, const float* lse,
                       float* dlogits, int64_t n, int64_t v, int64_t cols, int64_t begin,
                       float dloss, int ignore_index, float smoothing = 0, int64_t vocab = 1);

}  // namespace tessera::ops::cpu
