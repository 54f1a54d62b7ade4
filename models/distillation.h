#pragma once
// Knowledge distillation's soft term (Hinton, Vinyals and Dean 2015), for classifiers:
//   KD = T^2 * mean over rows of KL(softmax(teacher / T) || softmax(student / T))
// which PyTorch writes kl_div(log_softmax(student / T), softmax(teacher / T), 'batchmean') * T^2.
// The T^2 keeps the soft term's gradient on the scale of the hard loss's as T changes:
//   dKD / dstudent = T * (softmax(student / T) - softmax(teacher / T)) / rows.
// Computed in double on the host (the logits of a classifier are (B, classes): a copy each way on
// a GPU), so every device shares it.

#include "core/tensor.h"

namespace tessera::models {

// student, teacher: (N, C) f32 on any device. Returns KD. With `dstudent` defined (N, C) f32 on
// the student's device, ADDS scale * dKD/dstudent to it.
double distillation_term(const Tensor& student, const Tensor& teacher, float temperature,
                         float scale, const Tensor& dstudent);

}  // namespace tessera::models
