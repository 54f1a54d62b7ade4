#include "models/gpt.h"

#include <gtest/gtest.h>

#include "tests/models/model_test_support.h"

#include "core/philox.h"
#include "models/factory.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/reference.h"

namespace tessera::models {
namespace {

config::GptConfig tiny_config(bool tied) {
  config::GptConfig c;
  c.set_vocab_size(37);
  c.set_context(9);
  c.set_tie_embedding(tied);
  auto* t = c.mutable_transformer();
  t->set_d_model(16);
  t->set_n_layers(2);
  t->set_n_heads(2);
  t->set_mlp_ratio(4);
  return c;
}

Batch random_batch(int64_t B, int64_t T, int vocab, uint64_t seed) {
  Tensor tokens = Tensor::empty({B, T}, DType::i32), targets = Tensor::empty({B, T}, DType::i32);
  for (int64_t i = 0; i < B * T; ++i) {
    Philox4x32 r = philox_block(seed, 0, uint64_t(i));
    tokens.data<int32_t>()[i] = int32_t(r.v[0] % uint32_t(vocab));
    // About one target in eight is ignored, as padding would be.
    targets.data<int32_t>()[i] = r.v[2] % 8 == 0 ? -100 : int32_t(r.v[1] % uint32_t(vocab));
  }
  return {{"tokens", tokens}, {"targets", targets}};
}

// Reference loss, logits and gradients from tests/reference/ref_gpt.py (float64 autograd).
NamedTensors reference(Gpt& model, const Batch& batch, const config::GptConfig& c) {
  NamedTensors in;
  testing::add_param_inputs(in, 0, model.params());
  in["case0.tokens"] = batch.at("tokens");
  in["case0.targets"] = batch.at("targets");
  return testing::run_reference("gpt", in,
                                {{"case0.n_layers", std::to_string(c.transformer().n_layers())},
                                 {"case0.n_heads", std::to_string(c.transformer().n_heads())},
                                 {"case0.tied", c.tie_embedding() ? "1" : "0"}});
}

// On every device: the model built there (same config, same init seed) matches the float64
// PyTorch reference -- loss, logits and every gradient -- fed the batch on the host and on the
// device, and its gradients equal the CPU model's. On the CPU the reference comparison is what
// can fail (the CPU model is the model itself); on CUDA also the parameters built on the device
// (staged through the host) and the agreement with the CPU model. rtol 1e-4 for gradients: f32
// everywhere (cuBLAS with FP32 compute, no TF32) but other summation orders than the CPU
// kernels; each already holds 1e-4 against float64, logits and loss 1e-5.
class GptDeviceTest : public testing::DeviceTest {};

TEST_P(GptDeviceTest, LossLogitsAndEveryGradientMatchTorchAndTheCpuModel) {
  for (const bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied head" : "untied head");
    const config::GptConfig c = tiny_config(tied);
    config::ModelConfig mc;
    *mc.mutable_gpt() = c;
    Gpt cpu(c, /*recompute=*/false);
    cpu.params().init(11);
    std::unique_ptr<Model> built;
    Gpt& model = testing::build_twin(mc, device(), 11, cpu, built);
    const Batch batch = random_batch(3, 9, c.vocab_size(), 5);
    NamedTensors ref = reference(cpu, batch, c);
    cpu.forward_backward(batch, 1.0f);
    testing::expect_twin_matches(
        model, batch, ref["case0.loss"].data<float>()[0], ref, cpu.params(), [&] {
          EXPECT_EQ(model.logits().device(), device());
          EXPECT_ALL_CLOSE(model.logits(), ref["case0.logits"], 1e-5, "logits");
        });
  }
}

TESSERA_INSTANTIATE_DEVICE_TESTS(GptDeviceTest);

class GptTest : public ::testing::TestWithParam<bool> {};

TEST_P(GptTest, RecomputationGivesBitwiseEqualGradients) {
  config::GptConfig c = tiny_config(GetParam());
  Gpt plain(c, false), recompute(c, true);
  plain.params().init(3);
  recompute.params().init(3);
  Batch batch = random_batch(2, 9, c.vocab_size(), 8);
  plain.forward_backward(batch, 1.0f);
  recompute.forward_backward(batch, 1.0f);
  ASSERT_EQ(plain.params().numel(), recompute.params().numel());
  EXPECT_EQ(0, std::memcmp(plain.params().grads().raw_data(), recompute.params().grads().raw_data(),
                           plain.params().grads().nbytes()));
}

TEST_P(GptTest, GradientsBecomeFinalAsAGrowingPrefixDuringBackward) {
  config::GptConfig c = tiny_config(GetParam());
  Gpt model(c, false);
  model.params().init(1);
  std::vector<int64_t> prefixes;
  model.params().set_grad_ready_hook([&](int64_t n) { prefixes.push_back(n); });
  model.params().zero_grads();
  model.forward_backward(random_batch(2, 9, c.vocab_size(), 1), 1.0f);
  // Every parameter reports, in an order that grows the final prefix many times (once per layer
  // or so), ending with the whole buffer.
  ASSERT_GT(prefixes.size(), 2u * c.transformer().n_layers());
  for (size_t i = 1; i < prefixes.size(); ++i) EXPECT_GT(prefixes[i], prefixes[i - 1]);
  EXPECT_EQ(prefixes.back(), model.params().numel());
}

INSTANTIATE_TEST_SUITE_P(Heads, GptTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "tied" : "untied"; });

}  // namespace
}  // namespace tessera::models
