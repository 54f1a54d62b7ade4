// Knowledge distillation (models/distillation.h, Vit::set_teacher): the soft term and its gradient
// against PyTorch's kl_div, and the ViT training loss alpha * CE + (1 - alpha) * KD with a teacher
// against an independent computation from the two models' logits.
#include "models/distillation.h"

#include <gtest/gtest.h>

#include <barrier>
#include <cmath>
#include <thread>

#include "models/clip.h"
#include "models/clip_distillation.h"
#include "models/gpt.h"
#include "models/vit.h"
#include "ops/contrastive.h"
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

// Next-token logits (N, Vp) with a padded vocabulary (only the first `vocab` columns count) and
// ignored targets (-100: their rows take no part in the mean).
struct VocabCase {
  int64_t n, width, vocab;
  float T, scale;
};
const std::vector<VocabCase> kVocabCases = {
    {6, 10, 10, 1.0f, 1.0f}, {9, 24, 21, 3.0f, 0.5f}, {5, 520, 511, 2.0f, 0.25f}};

Tensor vocab_targets(int64_t n, int64_t vocab, size_t c) {
  Tensor y = Tensor::empty({n}, DType::i32);
  for (int64_t i = 0; i < n; ++i) {
    y.data<int32_t>()[i] = (i % 3 == 1) ? -100 : int32_t((7 * i + c) % vocab);
  }
  return y;
}

TEST(Distillation, VocabTermMatchesTorch) {
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < kVocabCases.size(); ++c) {
    const VocabCase& k = kVocabCases[c];
    in[case_key(c, "student")] = testing::normal({k.n, k.width}, 30 + c, 3.0f);
    in[case_key(c, "teacher")] = testing::normal({k.n, k.width}, 40 + c, 3.0f);
    in[case_key(c, "targets")] = vocab_targets(k.n, k.vocab, c);
    attrs[case_key(c, "temperature")] = std::to_string(k.T);
    attrs[case_key(c, "scale")] = std::to_string(k.scale);
    attrs[case_key(c, "vocab")] = std::to_string(k.vocab);
    attrs[case_key(c, "ignore_index")] = "-100";
  }
  NamedTensors ref = testing::run_reference("vocab_distill", in, attrs);
  const HostAllReduce none = [](const Tensor&, bool) {};
  for (size_t c = 0; c < kVocabCases.size(); ++c) {
    const VocabCase& k = kVocabCases[c];
    Tensor grad = Tensor::zeros({k.n, k.width}, DType::f32);
    const double kd = vocab_distillation_term(
        in[case_key(c, "student")], in[case_key(c, "teacher")], in[case_key(c, "targets")], 0,
        k.vocab, -100, k.T, k.scale, grad, none);
    const double want = ref[case_key(c, "kd")].data<float>()[0];
    EXPECT_NEAR(kd, want, 1e-5 * std::fabs(want)) << "case " << c;
    EXPECT_ALL_CLOSE(grad, ref[case_key(c, "grad")], 1e-5, "gradient, case " + std::to_string(c));
  }
}

// Columns [r * width / ranks, ...) of a (N, width) tensor.
Tensor column_slice(const Tensor& t, int r, int ranks) {
  const int64_t n = t.dim(0), w = t.dim(1) / ranks;
  Tensor out = Tensor::empty({n, w}, DType::f32);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < w; ++j)
      out.data<float>()[i * w + j] = t.data<float>()[i * t.dim(1) + r * w + j];
  }
  return out;
}

// Vocab parallel: ranks (threads here) holding column slices exchange only row maxima and sums
// (the all-reduce below) and reach the one-rank loss on every rank and, together, its gradient.
// With 4 ranks over 520 columns of which 511 are real, the last slice holds the padding.
TEST(Distillation, VocabTermSplitOverRanksEqualsOneRank) {
  for (size_t c = 0; c < kVocabCases.size(); ++c) {
    const VocabCase& k = kVocabCases[c];
    const Tensor student = testing::normal({k.n, k.width}, 30 + c, 3.0f);
    const Tensor teacher = testing::normal({k.n, k.width}, 40 + c, 3.0f);
    const Tensor targets = vocab_targets(k.n, k.vocab, c);
    Tensor want_grad = Tensor::zeros({k.n, k.width}, DType::f32);
    const double want = vocab_distillation_term(student, teacher, targets, 0, k.vocab, -100, k.T,
                                                k.scale, want_grad, [](const Tensor&, bool) {});
    for (int ranks : {2, 4}) {
      if (k.width % ranks != 0) continue;
      // Each rank publishes its piece, all wait, each reduces all pieces in rank order.
      std::vector<Tensor> pieces(ranks);
      std::barrier sync(ranks);
      std::vector<double> got(ranks);
      std::vector<Tensor> grads(ranks);
      std::vector<std::thread> threads;
      for (int r = 0; r < ranks; ++r) {
        threads.emplace_back([&, r] {
          const HostAllReduce reduce = [&](const Tensor& t, bool max) {
            pieces[r] = Tensor::empty(t.shape(), DType::f32);
            copy(t, pieces[r]);
            sync.arrive_and_wait();
            for (int64_t e = 0; e < t.numel(); ++e) {
              float v = pieces[0].data<float>()[e];
              for (int q = 1; q < ranks; ++q) {
                const float w = pieces[q].data<float>()[e];
                v = max ? std::max(v, w) : v + w;
              }
              t.data<float>()[e] = v;
            }
            sync.arrive_and_wait();
          };
          const int64_t w = k.width / ranks;
          grads[r] = Tensor::zeros({k.n, w}, DType::f32);
          got[r] = vocab_distillation_term(column_slice(student, r, ranks),
                                           column_slice(teacher, r, ranks), targets, r * w, k.vocab,
                                           -100, k.T, k.scale, grads[r], reduce);
        });
      }
      for (auto& t : threads) t.join();
      const std::string what =
          "case " + std::to_string(c) + ", " + std::to_string(ranks) + " ranks";
      for (int r = 0; r < ranks; ++r) {
        EXPECT_EQ(got[r], got[0]) << what << ": rank " << r << " differs";
        EXPECT_NEAR(got[r], want, 1e-5 * std::fabs(want)) << what;
        EXPECT_ALL_CLOSE(grads[r], column_slice(want_grad, r, ranks), 1e-5,
                         what + ", gradient of rank " + std::to_string(r));
      }
    }
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

config::GptConfig gpt(int d, int layers) {
  config::GptConfig c;
  c.set_vocab_size(21);
  c.set_vocab_pad_multiple(8);  // 24 columns, 3 of them padding
  c.set_context(8);
  c.mutable_transformer()->set_d_model(d);
  c.mutable_transformer()->set_n_layers(layers);
  c.mutable_transformer()->set_n_heads(2);
  c.mutable_transformer()->set_mlp_ratio(2);
  return c;
}

// A GPT student with a deeper, wider teacher: the training loss is alpha * CE + (1 - alpha) *
// T^2 * mean KL over the real vocabulary and the non-ignored tokens, computed here from both
// models' logits; evaluation stays the plain CE.
TEST(Distillation, GptLossWithATeacher) {
  auto teacher = std::make_unique<Gpt>(gpt(24, 2), false);
  teacher->params().init(1);
  Gpt student(gpt(16, 1), false);
  student.params().init(2);
  const int64_t B = 2, T = 6, N = B * T, V = 21, W = 24;
  Tensor tokens = Tensor::empty({B, T}, DType::i32), targets = Tensor::empty({B, T}, DType::i32);
  for (int64_t i = 0; i < N; ++i) {
    tokens.data<int32_t>()[i] = int32_t((5 * i + 3) % V);
    targets.data<int32_t>()[i] = i % 4 == 2 ? -100 : int32_t((11 * i + 1) % V);
  }
  const Batch batch = {{"tokens", tokens}, {"targets", targets}};
  Tensor sl = Tensor::empty({N, W}, DType::f32), tl = Tensor::empty({N, W}, DType::f32);
  copy(student.forward_logits(tokens).view({N, W}), sl);
  copy(teacher->forward_logits(tokens).view({N, W}), tl);
  const float alpha = 0.4f, temp = 3.0f;
  double ce = 0, kl = 0;
  int64_t valid = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int32_t y = targets.data<int32_t>()[i];
    if (y == -100) continue;
    ++valid;
    const float* x = sl.data<float>() + i * W;
    const float* t = tl.data<float>() + i * W;
    double z = 0, zs = 0, zt = 0;
    for (int j = 0; j < V; ++j) {
      z += std::exp(double(x[j]));
      zs += std::exp(x[j] / double(temp));
      zt += std::exp(t[j] / double(temp));
    }
    ce += std::log(z) - x[y];
    for (int j = 0; j < V; ++j) {
      const double lq = t[j] / double(temp) - std::log(zt), lp = x[j] / double(temp) - std::log(zs);
      kl += std::exp(lq) * (lq - lp);
    }
  }
  const double want = alpha * ce / valid + (1 - alpha) * temp * temp * kl / valid;
  student.set_teacher(std::move(teacher), alpha, temp);
  student.params().zero_grads();
  EXPECT_NEAR(student.forward_backward(batch, 1.0f).loss, want, 1e-5 * want);
  EXPECT_NEAR(student.forward_loss(batch).loss, ce / valid, 1e-5 * ce / valid);
  // A teacher of another vocabulary is refused, naming both sizes.
  config::GptConfig other = gpt(16, 1);
  other.set_vocab_size(22);
  try {
    student.set_teacher(std::make_unique<Gpt>(other, false), alpha, temp);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary of 21 tokens, got 22"), std::string::npos)
        << e.what();
  }
}

// (B, E) rows of unit length.
Tensor unit_rows(int64_t B, int64_t E, uint64_t seed) {
  Tensor x = testing::normal({B, E}, seed);
  Tensor y = Tensor::empty({B, E}, DType::f32), norm = Tensor::empty({B}, DType::f32);
  ops::l2_normalize_forward(x, y, norm);
  return y;
}

// The CLIP / SigLIP soft term (models/clip_distillation.h) on one process against PyTorch: a
// student of width 8 and a teacher of width 12, each with its own scale (and bias); the loss and
// the gradients w.r.t. the embeddings (ADDED to what the buffers hold), t and the bias, 1e-5.
TEST(Distillation, ContrastiveTermMatchesTorch) {
  struct Case {
    bool siglip;
    int64_t B;
    float t, bias, teacher_t, teacher_bias, T, scale;
  };
  const std::vector<Case> cases = {{false, 5, 14.3f, 0, 30.0f, 0, 1.0f, 1.0f},
                                   {false, 7, 8.0f, 0, 50.0f, 0, 2.5f, 0.4f},
                                   {true, 6, 10.0f, -2.0f, 20.0f, -4.0f, 1.0f, 1.0f},
                                   {true, 5, 5.0f, -1.0f, 12.0f, 1.5f, 3.0f, 0.3f}};
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    in[case_key(c, "img")] = unit_rows(k.B, 8, 50 + c);
    in[case_key(c, "txt")] = unit_rows(k.B, 8, 60 + c);
    in[case_key(c, "teacher_img")] = unit_rows(k.B, 12, 70 + c);
    in[case_key(c, "teacher_txt")] = unit_rows(k.B, 12, 80 + c);
    attrs[case_key(c, "siglip")] = k.siglip ? "1" : "0";
    attrs[case_key(c, "t")] = std::to_string(k.t);
    attrs[case_key(c, "bias")] = std::to_string(k.bias);
    attrs[case_key(c, "teacher_t")] = std::to_string(k.teacher_t);
    attrs[case_key(c, "teacher_bias")] = std::to_string(k.teacher_bias);
    attrs[case_key(c, "temperature")] = std::to_string(k.T);
    attrs[case_key(c, "scale")] = std::to_string(k.scale);
  }
  NamedTensors ref = testing::run_reference("clip_distill", in, attrs);
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    const std::string at = "case " + std::to_string(c);
    // The buffers hold something already: the term adds to it.
    Tensor dimg = testing::normal({k.B, 8}, 90 + c), dtxt = testing::normal({k.B, 8}, 95 + c);
    Tensor want_dimg = Tensor::empty({k.B, 8}, DType::f32);
    Tensor want_dtxt = Tensor::empty({k.B, 8}, DType::f32);
    for (int64_t i = 0; i < k.B * 8; ++i) {
      want_dimg.data<float>()[i] =
          dimg.data<float>()[i] + ref[case_key(c, "dimg")].data<float>()[i];
      want_dtxt.data<float>()[i] =
          dtxt.data<float>()[i] + ref[case_key(c, "dtxt")].data<float>()[i];
    }
    const ContrastiveResult r = contrastive_distillation_term(
        k.siglip ? config::ClipConfig::SIGLIP : config::ClipConfig::INFONCE, nullptr,
        in[case_key(c, "img")], in[case_key(c, "txt")], k.t, k.bias, in[case_key(c, "teacher_img")],
        in[case_key(c, "teacher_txt")], k.teacher_t, k.teacher_bias, k.T, k.scale, dimg, dtxt);
    const double kd = ref[case_key(c, "kd")].data<float>()[0];
    EXPECT_NEAR(r.loss, kd, 1e-5 * std::fabs(kd)) << at;
    EXPECT_GT(kd, 1e-3) << at << ": the teacher and student logits agree; nothing to test";
    EXPECT_ALL_CLOSE(dimg, want_dimg, 1e-5, "dimg, " + at);
    EXPECT_ALL_CLOSE(dtxt, want_dtxt, 1e-5, "dtxt, " + at);
    const double dt = ref[case_key(c, "dt")].data<float>()[0];
    EXPECT_NEAR(r.dt, dt, 1e-5 * std::fabs(dt)) << at;
    const double dbias = ref[case_key(c, "dbias")].data<float>()[0];
    EXPECT_NEAR(r.dbias, dbias, 1e-5 * std::fabs(dbias) + 1e-12) << at;
    if (k.siglip) {
      EXPECT_GT(std::fabs(dbias), 1e-6) << at;
    }
  }
}

config::ClipConfig clip(config::ClipConfig::Loss loss, int d, int embed) {
  config::ClipConfig c;
  auto* img = c.mutable_image();
  img->set_image_size(8);
  img->set_channels(3);
  img->set_patch(4);
  img->set_n_classes(0);
  img->mutable_transformer()->set_d_model(d);
  img->mutable_transformer()->set_n_layers(1);
  img->mutable_transformer()->set_n_heads(2);
  img->mutable_transformer()->set_mlp_ratio(2);
  auto* txt = c.mutable_text();
  txt->set_vocab_size(29);
  txt->set_context(7);
  txt->mutable_transformer()->set_d_model(d);
  txt->mutable_transformer()->set_n_layers(1);
  txt->mutable_transformer()->set_n_heads(2);
  txt->mutable_transformer()->set_mlp_ratio(2);
  c.set_embed_dim(embed);
  c.set_max_logit_scale(std::log(100.0f));
  c.set_loss(loss);
  c.set_init_logit_scale(std::log(10.0f));
  c.set_init_logit_bias(-2.0f);
  return c;
}

Batch clip_batch(int64_t B, uint64_t seed) {
  const int64_t L = 6;
  Tensor text = Tensor::empty({B, L}, DType::i32), eot = Tensor::empty({B}, DType::i32);
  for (int64_t i = 0; i < B * L; ++i) text.data<int32_t>()[i] = int32_t((7 * i + seed) % 29);
  for (int64_t i = 0; i < B; ++i) eot.data<int32_t>()[i] = int32_t((i + 2) % L);
  return {{"images", testing::normal({B, 8, 8, 3}, seed)}, {"text", text}, {"text_eot", eot}};
}

// A CLIP / SigLIP student with a wider teacher of another embed_dim and scale: the training loss
// is alpha * (the contrastive loss) + (1 - alpha) * the soft term of both models' embeddings
// (each encoded alone here); evaluation stays the contrastive loss; the gradient changes; a
// teacher of another loss kind or vocabulary is refused.
TEST(Distillation, ClipLossWithATeacher) {
  for (auto loss : {config::ClipConfig::INFONCE, config::ClipConfig::SIGLIP}) {
    const std::string what = config::ClipConfig::Loss_Name(loss);
    config::ClipConfig tc = clip(loss, 24, 12);
    tc.set_init_logit_scale(std::log(30.0f));
    tc.set_init_logit_bias(-3.0f);
    auto teacher = std::make_unique<Clip>(tc, false);
    teacher->params().init(1);
    Clip student(clip(loss, 16, 8), false);
    student.params().init(2);
    const Batch batch = clip_batch(5, 3);
    const float alpha = 0.3f, T = 2.0f;
    const double plain = student.forward_loss(batch).loss;
    student.params().zero_grads();
    student.forward_backward(batch, 1.0f);
    Tensor plain_grads = Tensor::empty(student.params().grads().shape(), DType::f32);
    copy(student.params().grads(), plain_grads);
    const Tensor img = student.encode_images(batch.at("images"));
    const Tensor txt = student.encode_text(batch.at("text"), batch.at("text_eot"));
    const Tensor timg = teacher->encode_images(batch.at("images"));
    const Tensor ttxt = teacher->encode_text(batch.at("text"), batch.at("text_eot"));
    const double kd =
        contrastive_distillation_term(loss, nullptr, img, txt, 10.0f,
                                      loss == config::ClipConfig::SIGLIP ? -2.0f : 0.0f, timg, ttxt,
                                      30.0f, loss == config::ClipConfig::SIGLIP ? -3.0f : 0.0f, T,
                                      0.0f, Tensor(), Tensor())
            .loss;
    student.set_teacher(std::move(teacher), alpha, T);
    student.params().zero_grads();
    const double got = student.forward_backward(batch, 1.0f).loss;
    EXPECT_NEAR(got, alpha * plain + (1 - alpha) * kd, 1e-5 * got) << what;
    EXPECT_GT(std::fabs(got - plain), 1e-3) << what << ": the teacher does not change the loss";
    EXPECT_GT(testing::diff(student.params().grads(), plain_grads).relative(), 1e-3) << what;
    EXPECT_NEAR(student.forward_loss(batch).loss, plain, 1e-6 * plain) << what;
    config::ClipConfig other = clip(loss, 16, 8);
    other.set_loss(loss == config::ClipConfig::SIGLIP ? config::ClipConfig::INFONCE
                                                      : config::ClipConfig::SIGLIP);
    try {
      student.set_teacher(std::make_unique<Clip>(other, false), alpha, T);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("must use the student's " + what + " loss"),
                std::string::npos)
          << e.what();
    }
    other = clip(loss, 16, 8);
    other.mutable_text()->set_vocab_size(30);
    try {
      student.set_teacher(std::make_unique<Clip>(other, false), alpha, T);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("vocab_size 29, context at least 7), got vocab_size 30"),
                std::string::npos)
          << e.what();
    }
  }
}

// The settings every family shares (TeacherSlot): alpha outside [0, 1] or T <= 0 refused, naming
// the student's family.
TEST(Distillation, BadAlphaOrTemperatureIsNamed) {
  auto expect_error = [](const std::function<void()>& f, const std::string& want) {
    try {
      f();
      ADD_FAILURE() << "no error, wanted " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  Vit v(vit(16), false);
  expect_error([&] { v.set_teacher(std::make_unique<Vit>(vit(24), false), 1.5f, 1.0f); },
               "Vit: distillation needs alpha in [0, 1] and temperature > 0, got 1.5 and 1");
  Gpt g(gpt(16, 1), false);
  expect_error([&] { g.set_teacher(std::make_unique<Gpt>(gpt(16, 1), false), 0.5f, 0.0f); },
               "Gpt: distillation needs alpha in [0, 1] and temperature > 0, got 0.5 and 0");
  Clip c(clip(config::ClipConfig::INFONCE, 16, 8), false);
  expect_error(
      [&] {
        c.set_teacher(std::make_unique<Clip>(clip(config::ClipConfig::INFONCE, 16, 8), false),
                      -0.1f, 2.0f);
      },
      "Clip: distillation needs alpha in [0, 1] and temperature > 0, got -0.1 and 2");
}

}  // namespace
}  // namespace tessera::models
