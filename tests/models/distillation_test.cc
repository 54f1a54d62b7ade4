// Knowledge distillation (models/distillation.h, Vit::set_teacher): the soft term and its gradient
// against PyTorch's kl_div, and the ViT training loss alpha * CE + (1 - alpha) * KD with a teacher
// against an independent computation from the two models' logits.
#include "models/distillation.h"

#include <gtest/gtest.h>

#include <cmath>

#include "models/vit.h"
#include "tests/support/compare.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera::models {
namespace {

using testing::case_key;

TEST(Distillation, MatchesTorchKlDiv) {
  struct Case {
    int64_t n, c;
    float T, scale;
  };
  const std::vector<Case> cases = {
      {4, 10, 1.0f, 1.0f}, {7, 22, 4.0f, 0.5f}, {3, 1000, 2.0f, 0.25f}};
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < cases.size(); ++c) {
    in[case_key(c, "student")] = testing::normal({cases[c].n, cases[c].c}, 10 + c, 3.0f);
    in[case_key(c, "teacher")] = testing::normal({cases[c].n, cases[c].c}, 20 + c, 3.0f);
    attrs[case_key(c, "temperature")] = std::to_string(cases[c].T);
    attrs[case_key(c, "scale")] = std::to_string(cases[c].scale);
  }
  NamedTensors ref = testing::run_reference("distill", in, attrs);
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    Tensor grad = Tensor::zeros({k.n, k.c}, DType::f32);
    const double kd = distillation_term(in[case_key(c, "student")], in[case_key(c, "teacher")], k.T,
                                        k.scale, grad);
    const double want = ref[case_key(c, "kd")].data<float>()[0];
    EXPECT_NEAR(kd, want, 1e-5 * std::fabs(want)) << "case " << c;
    EXPECT_ALL_CLOSE(grad, ref[case_key(c, "grad")], 1e-5, "gradient, case " + std::to_string(c));
  }
}

config::VitConfig vit(int d) {
  config::VitConfig c;
  c.set_image_size(8);
  c.set_channels(3);
  c.set_patch(4);
  c.set_n_classes(10);
  c.mutable_transformer()->set_d_model(d);
  c.mutable_transformer()->set_n_layers(1);
  c.mutable_transformer()->set_n_heads(2);
  c.mutable_transformer()->set_mlp_ratio(2);
  return c;
}

TEST(Distillation, VitLossWithATeacher) {
  auto teacher = std::make_unique<Vit>(vit(24), false);  // a larger teacher
  teacher->params().init(1);
  Vit student(vit(16), false);
  student.params().init(2);
  const int64_t B = 6;
  Tensor labels = Tensor::empty({B}, DType::i32);
  for (int64_t i = 0; i < B; ++i) labels.data<int32_t>()[i] = int32_t((3 * i + 1) % 10);
  const Batch batch = {{"images", testing::normal({B, 8, 8, 3}, 5)}, {"labels", labels}};
  Tensor s = student.forward_logits(batch.at("images"));
  Tensor sl = Tensor::empty(s.shape(), DType::f32);
  copy(s, sl);
  const Tensor tl = teacher->forward_logits(batch.at("images"));
  const float alpha = 0.3f, T = 2.0f;
  double ce = 0, kl = 0;
  for (int64_t i = 0; i < B; ++i) {
    const float* x = sl.data<float>() + i * 10;
    const float* y = tl.data<float>() + i * 10;
    double m = -INFINITY, ms = -INFINITY, mt = -INFINITY;
    for (int j = 0; j < 10; ++j) {
      m = std::max(m, double(x[j]));
      ms = std::max(ms, x[j] / double(T));
      mt = std::max(mt, y[j] / double(T));
    }
    double z = 0, zs = 0, zt = 0;
    for (int j = 0; j < 10; ++j) {
      z += std::exp(x[j] - m);
      zs += std::exp(x[j] / double(T) - ms);
      zt += std::exp(y[j] / double(T) - mt);
    }
    ce += m + std::log(z) - x[labels.data<int32_t>()[i]];
    for (int j = 0; j < 10; ++j) {
      const double lq = y[j] / double(T) - mt - std::log(zt);
      const double lp = x[j] / double(T) - ms - std::log(zs);
      kl += std::exp(lq) * (lq - lp);
    }
  }
  const double want = alpha * ce / B + (1 - alpha) * T * T * kl / B;
  student.set_teacher(std::move(teacher), alpha, T);
  student.params().zero_grads();
  EXPECT_NEAR(student.forward_backward(batch, 1.0f).loss, want, 1e-5 * want);
  // Evaluation reports the plain cross-entropy.
  EXPECT_NEAR(student.forward_loss(batch).loss, ce / B, 1e-5 * ce / B);
}

}  // namespace
}  // namespace tessera::models
