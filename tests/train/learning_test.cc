// Learning on fixed small data: a GPT memorises a short real text.
#include <gtest/gtest.h>

#include <string>

#include "models/gpt.h"
#include "train/optimizer.h"

namespace tessera::train {
namespace {

// The first sentences of the GNU General Public License preamble (a real English text that every
// Debian machine also carries in /usr/share/common-licenses).
constexpr const char* kText =
    "The GNU General Public License is a free, copyleft license for software and other kinds of "
    "works. The licenses for most software and other practical works are designed to take away "
    "your freedom to share and change the works. By contrast, the GNU General Public License is "
    "intended to guarantee your freedom to share and change all versions of a program.";

TEST(Learning, GptMemorisesAShortRealText) {
  const std::string text = kText;
  const int T = 64, B = 6;
  config::GptConfig c;
  c.set_vocab_size(256);  // bytes
  c.set_context(T);
  c.set_tie_embedding(true);
  c.mutable_transformer()->set_d_model(64);
  c.mutable_transformer()->set_n_layers(2);
  c.mutable_transformer()->set_n_heads(4);
  c.mutable_transformer()->set_mlp_ratio(4);
  models::Gpt model(c, false);
  model.params().init(1);
  config::OptimConfig o;
  o.set_lr(2e-3f);
  o.set_beta1(0.9f);
  o.set_beta2(0.99f);
  o.set_eps(1e-8f);
  o.set_weight_decay(0.0f);
  o.set_grad_clip(1.0f);
  AdamW opt(model.params(), o);

  // The text cut into B fixed windows of T+1 bytes (overlapping, so together they cover it):
  // memorising means predicting every next byte of each window from the bytes before it.
  const int stride = (static_cast<int>(text.size()) - T - 1) / (B - 1);
  double loss = 1e9;
  int step = 0;
  for (; step < 400 && loss > 0.05; ++step) {
    Tensor tokens = Tensor::empty({B, T}, DType::i32), targets = Tensor::empty({B, T}, DType::i32);
    for (int b = 0; b < B; ++b) {
      int start = b * stride;
      for (int t = 0; t < T; ++t) {
        tokens.data<int32_t>()[b * T + t] = static_cast<unsigned char>(text[start + t]);
        targets.data<int32_t>()[b * T + t] = static_cast<unsigned char>(text[start + t + 1]);
      }
    }
    model.params().zero_grads();
    loss = model.forward_backward({{"tokens", tokens}, {"targets", targets}}, 1.0f).loss;
    opt.step(2e-3);
  }
  std::printf("loss %.4f after %d steps\n", loss, step);
  EXPECT_LT(loss, 0.1);
}

}  // namespace
}  // namespace tessera::train
