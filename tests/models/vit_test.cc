#include "models/vit.h"

#include <gtest/gtest.h>

#include "tests/models/model_test_support.h"

#include <cstring>

#include "core/philox.h"
#include "models/factory.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera::models {
namespace {

config::VitConfig tiny_config() {
  config::VitConfig c;
  c.set_image_size(8);
  c.set_channels(3);
  c.set_patch(4);  // 4 patches + the class token: T = 5
  c.set_n_classes(7);
  auto* t = c.mutable_transformer();
  t->set_d_model(16);
  t->set_n_layers(2);
  t->set_n_heads(2);
  t->set_mlp_ratio(4);
  return c;
}

Batch random_batch(int64_t B, const config::VitConfig& c, uint64_t seed) {
  Tensor images = testing::normal({B, c.image_size(), c.image_size(), c.channels()}, seed);
  Tensor labels = Tensor::empty({B}, DType::i32);
  for (int64_t i = 0; i < B; ++i) {
    labels.data<int32_t>()[i] = int32_t(philox_block(seed, 1, uint64_t(i)).v[0] % c.n_classes());
  }
  return {{"images", images}, {"labels", labels}};
}

NamedTensors reference(Vit& model, const Batch& batch, const config::VitConfig& c) {
  NamedTensors in;
  testing::add_param_inputs(in, 0, model.params());
  in["case0.images"] = batch.at("images");
  in["case0.labels"] = batch.at("labels");
  return testing::run_reference("vit", in,
                                {{"case0.patch", std::to_string(c.patch())},
                                 {"case0.n_layers", std::to_string(c.transformer().n_layers())},
                                 {"case0.n_heads", std::to_string(c.transformer().n_heads())}});
}

// On every device: the model built there (same config, same init seed) matches the float64
// PyTorch reference -- loss, logits and every gradient -- fed the batch on the host and on the
// device, and its gradients equal the CPU model's. On the CPU the reference comparison is what
// can fail; on CUDA also the parameters built there and the agreement with the CPU model (rtol
// 1e-4: f32 on both, other summation orders; each holds 1e-4 against float64).
class VitDeviceTest : public testing::DeviceTest {};

TEST_P(VitDeviceTest, LossLogitsAndEveryGradientMatchTorchAndTheCpuModel) {
  const config::VitConfig c = tiny_config();
  config::ModelConfig mc;
  *mc.mutable_vit() = c;
  Vit cpu(c, /*recompute=*/false);
  cpu.params().init(11);
  std::unique_ptr<Model> built;
  Vit& model = testing::build_twin(mc, device(), 11, cpu, built);
  const Batch batch = random_batch(3, c, 5);
  NamedTensors ref = reference(cpu, batch, c);
  cpu.forward_backward(batch, 1.0f);
  testing::expect_twin_matches(
      model, batch, ref["case0.loss"].data<float>()[0], ref, cpu.params(), [&] {
        EXPECT_EQ(model.logits().device(), device());
        EXPECT_ALL_CLOSE(model.logits(), ref["case0.logits"], 1e-5, "logits");
      });
}

TESSERA_INSTANTIATE_DEVICE_TESTS(VitDeviceTest);

// pre_norm (CLIP's LayerNorm before the blocks): loss, logits and every gradient, ln_pre's
// included, match the float64 PyTorch reference.
TEST(VitTest, PreNormMatchesTorch) {
  config::VitConfig c = tiny_config();
  c.set_pre_norm(true);
  Vit model(c, /*recompute=*/false);
  ASSERT_GE(model.params().find("ln_pre.weight"), 0);
  model.params().init(12);
  // Move ln_pre off its (1, 0) init so that its parameters matter.
  Tensor w = model.params().param(model.params().find("ln_pre.weight"));
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = 1.0f + 0.1f * float(i % 5);
  const Batch batch = random_batch(3, c, 6);
  NamedTensors ref = reference(model, batch, c);
  const double loss = model.forward_backward(batch, 1.0f).loss;
  EXPECT_NEAR(loss, ref["case0.loss"].data<float>()[0], 1e-5);
  EXPECT_ALL_CLOSE(model.logits(), ref["case0.logits"], 1e-5, "logits");
  testing::expect_grads_match(model.params(), ref, 0, 1e-4);
}

TEST(VitTest, ParameterNamesAndLayout) {
  Vit model(tiny_config(), false);
  const ParamStore& s = model.params();
  const auto& w = s.info(s.find("patch_embed.proj.weight")).spec;
  EXPECT_EQ(w.shape, (Shape{16, 4 * 4 * 3}));
  EXPECT_EQ(s.info(s.find("cls_token.weight")).spec.shape, (Shape{1, 16}));
  EXPECT_EQ(s.info(s.find("pos_emb.weight")).spec.shape, (Shape{5, 16}));
  EXPECT_EQ(s.info(s.find("head.weight")).spec.shape, (Shape{7, 16}));
  EXPECT_GE(s.find("blocks.1.attn.qkv.weight"), 0);
  EXPECT_GE(s.find("ln_f.bias"), 0);
}

TEST(VitTest, RecomputationGivesBitwiseEqualGradients) {
  config::VitConfig c = tiny_config();
  Vit plain(c, false), recompute(c, true);
  plain.params().init(3);
  recompute.params().init(3);
  Batch batch = random_batch(2, c, 8);
  plain.forward_backward(batch, 1.0f);
  recompute.forward_backward(batch, 1.0f);
  ASSERT_EQ(plain.params().numel(), recompute.params().numel());
  EXPECT_EQ(0, std::memcmp(plain.params().grads().raw_data(), recompute.params().grads().raw_data(),
                           plain.params().grads().nbytes()));
}

void expect_error(Vit& model, const Batch& batch, const std::string& part) {
  try {
    model.forward_loss(batch);
    ADD_FAILURE() << "no error for " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(VitTest, BadImageShapesAreRejected) {
  config::VitConfig c = tiny_config();
  Vit model(c, false);
  model.params().init(1);
  Batch batch = random_batch(2, c, 1);
  batch["images"] = Tensor::zeros({2, 8, 6, 3}, DType::f32);
  expect_error(model, batch,
               "images f32(2, 8, 6, 3) cpu: height 8 and width 6 must be divisible "
               "by the patch 4");
  batch["images"] = Tensor::zeros({2, 8, 8, 1}, DType::f32);
  expect_error(model, batch, "have 1 channels, the model expects 3");
  batch["images"] = Tensor::zeros({2, 12, 12, 3}, DType::f32);
  expect_error(model, batch, "are 12x12, the model was built for 8x8");
  batch["images"] = Tensor::zeros({2, 8, 8}, DType::f32);
  expect_error(model, batch, "\"images\" must be (B, 8, 8, 3) f32");
  batch = random_batch(2, c, 1);
  batch["labels"] = Tensor::zeros({3}, DType::i32);
  expect_error(model, batch, "\"labels\" must be (B) i32 with B = 2");
}

TEST(VitTest, FactoryBuildsIt) {
  config::ModelConfig mc;
  *mc.mutable_vit() = tiny_config();
  std::unique_ptr<Model> m = make_model(mc);
  ASSERT_NE(dynamic_cast<Vit*>(m.get()), nullptr);
  EXPECT_GT(m->train_flops(2), 0);
}

}  // namespace
}  // namespace tessera::models
