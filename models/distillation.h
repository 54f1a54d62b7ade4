#pragma once
// Knowledge distillation's soft term (Hinton, Vinyals and Dean 2015), for classifiers:
//   KD = T^2 * mean over rows of KL(softmax(teacher / T) || softmax(student / T))
// which PyTorch writes kl_div(log_softmax(student / T), softmax(teacher / T), 'batchmean') * T^2.
// The T^2 keeps the soft term's gradient on the scale of the hard loss's as T changes:
//   dKD / dstudent = T * (softmax(student / T) - softmax(teacher / T)) / rows.
// Computed in double on the host (the logits of a classifier are (B, classes): a copy each way on
// a GPU), so every device shares it.

#include <functional>

#include "core/tensor.h"

namespace tessera::models {

// student, teacher: (N, C) f32 on any device. Returns KD. With `dstudent` defined (N, C) f32 on
// the student's device, ADDS scale * dKD/dstudent to it.
double distillation_term(const Tensor& student, const Tensor& teacher, float temperature,
                         float scale, const Tensor& dstudent);

// The same soft term for a language model's next-token logits, split over the vocabulary under
// tensor parallelism (models/gpt.h): this rank holds columns [begin, begin + V_local) of the
// (padded) vocabulary, student and teacher alike; only global columns below `vocab` count. Per
// row, with a = teacher / T - max, b = student / T - max (each max over the whole real vocabulary):
//   S_t = sum exp(a), S_s = sum exp(b), A = sum exp(a) (a - b)          (sums over all ranks)
//   KL = A / S_t - log S_t + log S_s
// so the ranks exchange two row maxima (all-reduce max) and three row sums (all-reduce sum) and
// never the logits. Averaged as the cross-entropy is: over the rows whose target is not
// ignore_index (0 when there are none). Computed in double on the host from the f32 logits; the
// exchanged pieces are f32.
//
// all_reduce(t, max): reduces the host f32 tensor t in place over the tensor-parallel group
// (max when `max`, else sum); a no-op without TP.
using HostAllReduce = std::function<void(const Tensor& t, bool max)>;

// student: (N, V_local) f32, teacher: (N, Vt_local) f32 (Vt_local may differ only where begin is
// 0 and both cover `vocab`: one rank), targets: (N) i32. Returns T^2 * mean KL (identical on every
// rank). With `dstudent` defined (N, V_local) f32 on the student's device, ADDS
// scale * dKD/dstudent = scale * T * (softmax(student / T) - softmax(teacher / T)) / n_valid to
// it (zero in ignored rows and padded columns).
double vocab_distillation_term(const Tensor& student, const Tensor& teacher, const Tensor& targets,
                               int64_t begin, int64_t vocab, int ignore_index, float temperature,
                               float scale, const Tensor& dstudent,
                               const HostAllReduce& all_reduce);

}  // namespace tessera::models
