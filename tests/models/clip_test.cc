#include "models/clip.h"

#include <gtest/gtest.h>

#include "tests/models/model_test_support.h"

#include <cmath>
#include <cstring>

#include "core/philox.h"
#include "models/factory.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera::models {
namespace {

enum class Case { kInfoNce, kSigLip, kClamped };

config::ClipConfig tiny_config(Case k) {
  config::ClipConfig c;
  auto* img = c.mutable_image();
  img->set_image_size(8);
  img->set_channels(3);
  img->set_patch(4);
  img->set_n_classes(0);
  img->mutable_transformer()->set_d_model(16);
  img->mutable_transformer()->set_n_layers(2);
  img->mutable_transformer()->set_n_heads(2);
  img->mutable_transformer()->set_mlp_ratio(4);
  auto* txt = c.mutable_text();
  txt->set_vocab_size(29);
  txt->set_context(7);
  txt->mutable_transformer()->set_d_model(12);
  txt->mutable_transformer()->set_n_layers(2);
  txt->mutable_transformer()->set_n_heads(3);
  txt->mutable_transformer()->set_mlp_ratio(4);
  c.set_embed_dim(8);
  c.set_max_logit_scale(std::log(100.0f));
  if (k == Case::kSigLip) {
    c.set_loss(config::ClipConfig::SIGLIP);
    c.set_init_logit_scale(std::log(10.0f));
    c.set_init_logit_bias(-2.0f);  // not SigLIP's -10: a tiny batch would give tiny gradients
  } else {
    c.set_loss(config::ClipConfig::INFONCE);
    // Clamped: above the max, so the forward uses exp(max) and logit_scale gets no gradient.
    c.set_init_logit_scale(k == Case::kClamped ? 5.0f : std::log(1 / 0.07f));
  }
  return c;
}

// Texts shorter than the context (L = 6 of 7), end-of-text positions spread over the rows.
Batch random_batch(int64_t B, const config::ClipConfig& c, uint64_t seed) {
  const auto& ic = c.image();
  const int64_t L = 6;
  Tensor images = testing::normal({B, ic.image_size(), ic.image_size(), ic.channels()}, seed);
  Tensor text = Tensor::empty({B, L}, DType::i32), eot = Tensor::empty({B}, DType::i32);
  for (int64_t i = 0; i < B * L; ++i) {
    text.data<int32_t>()[i] =
        int32_t(philox_block(seed, 1, uint64_t(i)).v[0] % uint32_t(c.text().vocab_size()));
  }
  for (int64_t b = 0; b < B; ++b) eot.data<int32_t>()[b] = int32_t((2 * b + 1) % L);
  return {{"images", images}, {"text", text}, {"text_eot", eot}};
}

NamedTensors reference(Clip& model, const Batch& batch, const config::ClipConfig& c) {
  NamedTensors in;
  testing::add_param_inputs(in, 0, model.params());
  for (const auto& [name, t] : batch) in["case0." + name] = t;
  char max_scale[32], init_scale[32];
  std::snprintf(max_scale, sizeof max_scale, "%.9g", c.max_logit_scale());
  // Not read by the script: run_reference caches by names, shapes and attrs, and the clamped
  // case differs from the plain one only in logit_scale's value.
  std::snprintf(init_scale, sizeof init_scale, "%.9g", c.init_logit_scale());
  return testing::run_reference(
      "clip", in,
      {{"case0.patch", std::to_string(c.image().patch())},
       {"case0.image_layers", std::to_string(c.image().transformer().n_layers())},
       {"case0.image_heads", std::to_string(c.image().transformer().n_heads())},
       {"case0.text_layers", std::to_string(c.text().transformer().n_layers())},
       {"case0.text_heads", std::to_string(c.text().transformer().n_heads())},
       {"case0.siglip", c.loss() == config::ClipConfig::SIGLIP ? "1" : "0"},
       {"case0.max_logit_scale", max_scale},
       {"case0.init_logit_scale", init_scale}});
}

// On every device, for InfoNCE, SigLIP and a clamped logit scale: the model built there (same
// config, same init seed) matches the float64 PyTorch reference -- loss, both embeddings and
// every gradient -- fed the batch on the host and on the device, and its gradients equal the CPU
// model's. On the CPU the reference comparison is what can fail; on CUDA also the parameters
// built there and the agreement with the CPU model (rtol 1e-4: f32 on both, other summation
// orders; each holds 1e-4 against float64).
class ClipDeviceTest : public testing::DeviceTest {};

TEST_P(ClipDeviceTest, LossEmbeddingsAndEveryGradientMatchTorchAndTheCpuModel) {
  for (const Case k : {Case::kInfoNce, Case::kSigLip, Case::kClamped}) {
    SCOPED_TRACE(k == Case::kInfoNce ? "infonce" : k == Case::kSigLip ? "siglip" : "clamped");
    const config::ClipConfig c = tiny_config(k);
    config::ModelConfig mc;
    *mc.mutable_clip() = c;
    Clip cpu(c, /*recompute=*/false);
    cpu.params().init(11);
    std::unique_ptr<Model> built;
    Clip& model = testing::build_twin(mc, device(), 11, cpu, built);
    const Batch batch = random_batch(5, c, 5);
    NamedTensors ref = reference(cpu, batch, c);
    cpu.forward_backward(batch, 1.0f);
    testing::expect_twin_matches(
        model, batch, ref["case0.loss"].data<float>()[0], ref, cpu.params(), [&] {
          EXPECT_EQ(model.image_embeddings().device(), device());
          EXPECT_ALL_CLOSE(model.image_embeddings(), ref["case0.image_embeddings"], 1e-5,
                           "image emb");
          EXPECT_ALL_CLOSE(model.text_embeddings(), ref["case0.text_embeddings"], 1e-5, "text emb");
        });
    const Tensor dscale =
        to_device(model.params().grad(model.params().find("logit_scale")), Device::cpu());
    if (k == Case::kClamped) {
      EXPECT_EQ(dscale.data<float>()[0], 0.0f);
    } else {
      EXPECT_NE(dscale.data<float>()[0], 0.0f);  // the comparison above is meaningful
    }
  }
}

TESSERA_INSTANTIATE_DEVICE_TESTS(ClipDeviceTest);

class ClipTest : public ::testing::TestWithParam<Case> {};

TEST_P(ClipTest, RecomputationGivesBitwiseEqualGradients) {
  config::ClipConfig c = tiny_config(GetParam());
  Clip plain(c, false), recompute(c, true);
  plain.params().init(3);
  recompute.params().init(3);
  Batch batch = random_batch(4, c, 8);
  plain.forward_backward(batch, 1.0f);
  recompute.forward_backward(batch, 1.0f);
  ASSERT_EQ(plain.params().numel(), recompute.params().numel());
  EXPECT_EQ(0, std::memcmp(plain.params().grads().raw_data(), recompute.params().grads().raw_data(),
                           plain.params().grads().nbytes()));
}

INSTANTIATE_TEST_SUITE_P(Losses, ClipTest,
                         ::testing::Values(Case::kInfoNce, Case::kSigLip, Case::kClamped),
                         [](const auto& info) {
                           return info.param == Case::kInfoNce  ? "infonce"
                                  : info.param == Case::kSigLip ? "siglip"
                                                                : "infonce_clamped";
                         });

TEST(ClipModelTest, ParameterNamesAndScalars) {
  Clip siglip(tiny_config(Case::kSigLip), false);
  siglip.params().init(1);
  const ParamStore& s = siglip.params();
  for (const char* name :
       {"image.patch_embed.proj.weight", "image.cls_token.weight", "image.pos_emb.weight",
        "image.blocks.0.attn.qkv.weight", "image.ln_f.weight", "image.proj.weight",
        "text.tok_emb.weight", "text.pos_emb.weight", "text.blocks.1.mlp.fc.weight",
        "text.ln_f.bias", "text.proj.weight", "logit_scale", "logit_bias"}) {
    EXPECT_GE(s.find(name), 0) << name;
  }
  EXPECT_EQ(s.find("image.proj.bias"), -1);
  EXPECT_EQ(s.info(s.find("image.proj.weight")).spec.shape, (Shape{8, 16}));
  EXPECT_FLOAT_EQ(s.param(s.find("logit_scale")).data<float>()[0], std::log(10.0f));
  EXPECT_FLOAT_EQ(s.param(s.find("logit_bias")).data<float>()[0], -2.0f);
  Clip infonce(tiny_config(Case::kInfoNce), false);
  EXPECT_EQ(infonce.params().find("logit_bias"), -1);
}

void expect_error(Clip& model, const Batch& batch, const std::string& part) {
  try {
    model.forward_loss(batch);
    ADD_FAILURE() << "no error for " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(ClipModelTest, BadBatchesAreRejected) {
  config::ClipConfig c = tiny_config(Case::kInfoNce);
  Clip model(c, false);
  model.params().init(1);
  Batch batch = random_batch(3, c, 1);
  batch["text_eot"].data<int32_t>()[2] = 6;
  expect_error(model, batch, "\"text_eot\"[2] = 6 is outside the text length [0, 6)");
  batch = random_batch(3, c, 1);
  batch["text_eot"] = Tensor::zeros({2}, DType::i32);
  expect_error(model, batch, "\"text_eot\" must be (3) i32");
  batch = random_batch(3, c, 1);
  batch["text"] = Tensor::zeros({3, 8}, DType::i32);
  expect_error(model, batch, "has length 8, the text context is 7");
  batch = random_batch(3, c, 1);
  batch["images"] = Tensor::zeros({2, 8, 8, 3}, DType::f32);
  expect_error(model, batch, "must have the same batch size");
  batch = random_batch(3, c, 1);
  batch["images"] = Tensor::zeros({3, 8, 8, 4}, DType::f32);
  expect_error(model, batch, "have 4 channels, the model expects 3");
}

TEST(ClipModelTest, FactoryBuildsIt) {
  config::ModelConfig mc;
  *mc.mutable_clip() = tiny_config(Case::kSigLip);
  std::unique_ptr<Model> m = make_model(mc);
  ASSERT_NE(dynamic_cast<Clip*>(m.get()), nullptr);
  EXPECT_GT(m->train_flops(4), 0);
}

}  // namespace
}  // namespace tessera::models
