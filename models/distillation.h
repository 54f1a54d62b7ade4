#pragma once
// Knowledge distillation's soft term (Hinton, Vinyals and Dean 2015), for classifiers:
//   KD = T^2 * mean over rows of KL(softmax(teacher / T) || softmax(student / T))
// which PyTorch writes kl_div(log_softmax(student / T), softmax(teacher / T), 'batchmean') * T^2.
// The T^2 keeps the soft term's gradient on the scale of the hard loss's as T changes:
//   dKD / dstudent = T * (softmax(student / T) - softmax(teacher / T)) / rows.
// Computed in double on the host (the logits of a classifier are (B, classes): a copy each way on
// a GPU), so every device shares it.

#include <functional>
#include <memory>

#include "core/error.h"
#include "core/tensor.h"

namespace tessera::models {

// A student's distillation settings (Vit, Gpt, Clip): the frozen teacher, a model of the
// student's own class (nullptr: no distillation), and the loss's alpha and T. The training loss
// is combine(hard, soft) = alpha * hard + (1 - alpha) * soft; the hard loss's backward takes
// hard_scale(loss_scale), the soft term's soft_scale(loss_scale). The teacher's parameters are
// not the student's: nothing trains, saves or counts them.
template <typename M>
struct TeacherSlot {
  std::unique_ptr<M> model;
  float alpha = 1, temperature = 1;

  explicit operator bool() const { return model != nullptr; }
  M* operator->() const { return model.get(); }
  // Takes `teacher` after checking alpha in [0, 1] and T > 0; `who` names the student in errors.
  // The family's own compatibility checks (classes, vocabulary, image size) come first.
  void set(std::unique_ptr<M> teacher, float a, float t, const char* who) {
    TESSERA_CHECK(teacher != nullptr, who, ": set_teacher needs a teacher");
    TESSERA_CHECK(a >= 0 && a <= 1 && t > 0, who,
                  ": distillation needs alpha in [0, 1] and temperature > 0, got ", a, " and ", t);
    model = std::move(teacher);
    alpha = a;
    temperature = t;
  }
  float hard_scale(float loss_scale) const { return model ? loss_scale * alpha : loss_scale; }
  float soft_scale(float loss_scale) const { return loss_scale * (1 - alpha); }
  double combine(double hard, double soft) const { return alpha * hard + (1 - alpha) * soft; }
};

// student, teacher: (N, C) f32 on any device. Returns KD. With `dstudent` defined (N, C) f32 on
// the student's device, ADDS scale * dKD/dstudent to it.
double distillation_term(const Tensor& student, const Tensor& teacher, float temperature,
                         float scale, const Tensor& dstudent);

// The soft term for pairwise sigmoid (binary) outputs, SigLIP's: each entry of student / teacher
// (N, C) is a logit of its own Bernoulli, with p = sigmoid((teacher + teacher_bias) / T) and
// q = sigmoid((student + student_bias) / T),
//   KD = T^2 * (1 / N) * sum_ij [p log(p / q) + (1 - p) log((1 - p) / (1 - q))]
// (normalised per row as SigLIP's loss is: its sum over pairs over the rows). With `dstudent`
// defined (N, C) f32, ADDS scale * dKD/dstudent = scale * T * (q - p) / N. Host double.
double sigmoid_distillation_term(const Tensor& student, const Tensor& teacher, float student_bias,
                                 float teacher_bias, float temperature, float scale,
                                 const Tensor& dstudent);

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
