#pragma once
// Vocab-parallel embedding and cross-entropy (Megatron-LM, Shoeybi et al. 2019, section 3): the
// (V, C) table, and the (N, V) logits of a head tied to it, are split along V over the TP ranks;
// this rank holds vocabulary entries [begin, begin + V_local). The pieces below are what one rank
// computes on its slice; the caller all-reduces between them (models/layers/tensor_parallel.h):
//
//   embedding:  out = vocab_embedding_forward(...)         then all-reduce(sum) over TP
//   loss:       m   = vocab_ce_row_max(logits)              then all-reduce(max)
//               s,t = vocab_ce_sum_exp_target(logits, m)    then all-reduce(sum) of both
//               lse, loss = vocab_ce_loss(m, s, t)          (identical on every rank)
//               dlogits = vocab_ce_backward(logits, lse)    (local: softmax - local one-hot)
//
// Label smoothing (PyTorch's label_smoothing = eps; ops/cross_entropy.h's SoftTargets without
// mixing): the target is (1 - eps) onehot + eps / vocab, so the loss also needs each row's sum of
// logits over the whole real vocabulary: vocab_ce_sum_exp_target writes this slice's part into
// `row_sum` (all-reduced with the other two), vocab_ce_loss and vocab_ce_backward take eps.
//
// Padded vocabularies (models/gpt.h): the columns are the padded vocabulary [0, Vp), split over
// the ranks; only global columns below `vocab` (the real V) take part in the softmax. The
// padding lies in the last ranks' slices (a slice may be all padding); it is skipped by the
// kernels (not masked with -inf copies) and its dlogits are exactly 0. Without padding, vocab is
// the full width.
//
// The logits are never gathered. With one rank (begin 0, V_local = V) the composition equals
// ops/cross_entropy.h up to rounding. Every kernel is deterministic for a given thread count
// (rows are independent; the loss is summed in row order in double). CPU kernels only.

#include <cstdint>

#include "core/tensor.h"

namespace tessera::ops {

// out[i] = table[ids[i] - begin] when begin <= ids[i] < begin + V_local, else a zero row.
// Ids outside [0, vocab) throw tessera::Error naming the position and value. The shard may end
// past vocab (padded vocabulary: those rows are never selected).
void vocab_embedding_forward(const Tensor& ids,    // (N) i32, global ids
                             const Tensor& table,  // (V_local, C)
                             int64_t begin, int64_t vocab,
                             const Tensor& out);  // (N, C)
// Contract: dtable ACCUMULATES (+=): dtable[ids[i] - begin] += dout[i] for ids in this rank's
// range, in position order (threads split the columns).
void vocab_embedding_backward(const Tensor& dout,  // (N, C)
                              const Tensor& ids,   // (N) i32
                              int64_t begin,
                              const Tensor& dtable);  // (V_local, C)

// row_max[i] = max_j logits[i, j] over this slice's real columns (begin + j < vocab), written;
// -inf when the slice is all padding.
void vocab_ce_row_max(const Tensor& logits,  // (N, V_local)
                      int64_t begin, int64_t vocab,
                      const Tensor& row_max);  // (N)
// sum_exp[i] = sum_j exp(logits[i, j] - row_max[i]) over the real columns, with the GLOBAL row
// max; target_logit[i] =
// logits[i, targets[i] - begin] when the target is in this rank's range, else 0 (written);
// row_sum[i] = sum_j logits[i, j] over the real columns, when row_sum is defined (smoothing).
void vocab_ce_sum_exp_target(const Tensor& logits,   // (N, V_local)
                             const Tensor& targets,  // (N) i32, global ids
                             const Tensor& row_max,  // (N), all-reduced
                             int64_t begin, int64_t vocab,
                             const Tensor& sum_exp,              // (N)
                             const Tensor& target_logit,         // (N)
                             const Tensor& row_sum = Tensor());  // (N) or undefined
// From the all-reduced pieces: lse[i] = row_max[i] + log(sum_exp[i]) (written) and the mean of
// lse[i] - (1 - smoothing) target_logit[i] - smoothing / vocab * row_sum[i] over rows whose
// target is not ignore_index (0 when none is); row_sum is needed only when smoothing != 0. Targets
// outside [0, vocab) that are not ignore_index throw tessera::Error naming row and value.
void vocab_ce_loss(const Tensor& row_max, const Tensor& sum_exp, const Tensor& target_logit,
                   const Tensor& targets,  // (N) i32
                   int64_t vocab, int ignore_index,
                   const Tensor& lse,   // (N)
                   const Tensor& loss,  // (1)
                   float smoothing = 0, const Tensor& row_sum = Tensor());
// Contract: dlogits is WRITTEN: dloss / n_valid * (exp(logits - lse) - (1 - smoothing)
// onehot_local(target) - smoothing / vocab), zero rows for ignored targets, zero padded columns.
// May alias logits.
void vocab_ce_backward(const Tensor& logits,   // (N, V_local)
                       const Tensor& targets,  // (N) i32
                       const Tensor& lse,      // (N), from vocab_ce_loss
                       int64_t begin, int64_t vocab, float dloss, int ignore_index,
                       const Tensor& dlogits,  // (N, V_local)
                       float smoothing = 0);

}  // namespace tessera::ops
