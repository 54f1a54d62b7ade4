#include "models/dit.h"

#include <gtest/gtest.h>

#include "tests/models/model_test_support.h"

#include <cstring>
#include <iterator>

#include "core/random.h"
#include "models/factory.h"
#include "models/layers/adaln_block.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera::models {
namespace {

config::DitConfig tiny_config(config::DitConfig::BetaSchedule schedule) {
  config::DitConfig c;
  c.set_image_size(8);
  c.set_channels(3);
  c.set_patch(2);
  c.set_n_classes(5);
  c.set_diffusion_steps(1000);
  c.set_beta_schedule(schedule);
  c.set_class_dropout(0.5f);
  auto* t = c.mutable_transformer();
  t->set_d_model(32);
  t->set_n_layers(2);
  t->set_n_heads(2);
  t->set_mlp_ratio(4);
  return c;
}

// adaLN-Zero makes most gradients vanish at init; small random values everywhere make every
// parameter's gradient non-trivial for the equivalence tests.
void perturb(Dit& model, uint64_t stream) {
  fill_normal(model.params().params(), 77, stream, 0.0f, 0.1f);
}

Tensor keys(std::initializer_list<int64_t> values) {
  Tensor t = Tensor::empty({int64_t(values.size())}, DType::i64);
  int i = 0;
  for (int64_t v : values) t.data<int64_t>()[i++] = v;
  return t;
}

Tensor ints(std::initializer_list<int32_t> values) {
  Tensor t = Tensor::empty({int64_t(values.size())}, DType::i32);
  int i = 0;
  for (int32_t v : values) t.data<int32_t>()[i++] = v;
  return t;
}

Batch image_batch(int64_t B, uint64_t seed) {
  Tensor labels = Tensor::empty({B}, DType::i32);
  Tensor k = Tensor::empty({B}, DType::i64);
  for (int64_t b = 0; b < B; ++b) {
    labels.data<int32_t>()[b] = int32_t((b * 3 + seed) % 5);
    k.data<int64_t>()[b] = int64_t(1000 * seed + b);
  }
  return {{"images", testing::uniform({B, 8, 8, 3}, seed)}, {"labels", labels}, {"sample_keys", k}};
}

// TransformerConfig.activation as tests/reference/torch_models.py's ACTIVATIONS names it.
std::string activation_name(config::TransformerConfig::Activation a) {
  switch (a) {
    case config::TransformerConfig::GELU_ERF:
      return "gelu_erf";
    case config::TransformerConfig::QUICK_GELU:
      return "quick_gelu";
    default:
      return "gelu_tanh";
  }
}

std::map<std::string, std::string> attrs(int c, const config::DitConfig& cfg) {
  auto key = [&](const char* k) { return testing::case_key(c, k); };
  return {{key("n_layers"), std::to_string(cfg.transformer().n_layers())},
          {key("n_heads"), std::to_string(cfg.transformer().n_heads())},
          {key("patch"), std::to_string(cfg.patch())},
          {key("n_classes"), std::to_string(cfg.n_classes())},
          {key("schedule"), cfg.beta_schedule() == config::DitConfig::COSINE ? "cosine" : "linear"},
          {key("steps"), std::to_string(cfg.diffusion_steps())},
          {key("activation"), activation_name(cfg.transformer().activation())}};
}

// A DiT on `device` built from the same config and init seed as `cpu` (checked bitwise: the
// device init stages through the host); the caller then copies the CPU model's perturbed values.
std::unique_ptr<Model> device_twin(const config::DitConfig& cfg, Dit& cpu, Device device,
                                   uint64_t init_seed) {
  config::ModelConfig mc;
  *mc.mutable_dit() = cfg;
  std::unique_ptr<Model> m;
  testing::build_twin(mc, device, init_seed, cpu, m);
  return m;
}

// On every device, for both noise schedules and for the MLP's exact GELU and QuickGELU (the tanh
// GELU is the default): the model on the device matches the float64 PyTorch reference -- loss and
// every gradient -- fed the batch on the host and on the device, makes the same host-side draws,
// and its gradients equal the CPU model's. On the CPU the reference comparison is what can fail; on
// CUDA also the agreement with the CPU model (rtol 1e-4: f32 on both, other summation orders; each
// holds 1e-4 against float64).
class DitDeviceTest : public testing::DeviceTest {};

TEST_P(DitDeviceTest, LossAndEveryGradientMatchTorchAndTheCpuModel) {
  struct Case {
    config::DitConfig::BetaSchedule schedule;
    config::TransformerConfig::Activation activation;
  };
  const Case cases[] = {{config::DitConfig::LINEAR, config::TransformerConfig::GELU_TANH},
                        {config::DitConfig::COSINE, config::TransformerConfig::GELU_TANH},
                        {config::DitConfig::LINEAR, config::TransformerConfig::GELU_ERF},
                        {config::DitConfig::COSINE, config::TransformerConfig::QUICK_GELU}};
  const int n_cases = int(std::size(cases));
  std::vector<std::unique_ptr<Dit>> cpus;
  std::vector<std::unique_ptr<Model>> models;
  std::vector<Batch> batches;
  NamedTensors in;
  std::map<std::string, std::string> at;
  for (int c = 0; c < n_cases; ++c) {
    config::DitConfig cfg = tiny_config(cases[c].schedule);
    cfg.mutable_transformer()->set_activation(cases[c].activation);
    cpus.push_back(std::make_unique<Dit>(cfg, /*recompute=*/false));
    Dit& cpu = *cpus.back();
    cpu.params().init(11);
    models.push_back(device_twin(cfg, cpu, device(), 11));
    perturb(cpu, c);
    copy(cpu.params().params(), models.back()->params().params());
    Batch batch = image_batch(3, 5 + c);
    batch["timesteps"] = ints({0, 517, 999});
    batch["noise"] = testing::normal({3, 8, 8, 3}, 40 + c);
    // The reference gets the labels after the keyed drop (class_dropout 0.5).
    Dit::Draws d = cpu.draw(batch);
    testing::add_param_inputs(in, c, cpu.params());
    in[testing::case_key(c, "images")] = batch["images"];
    in[testing::case_key(c, "labels")] = d.labels;
    in[testing::case_key(c, "timesteps")] = d.timesteps;
    in[testing::case_key(c, "noise")] = d.noise;
    for (auto& [k, v] : attrs(c, cfg)) at[k] = v;
    batches.push_back(batch);
  }
  NamedTensors ref = testing::run_reference("dit", in, at);
  for (int c = 0; c < n_cases; ++c) {
    SCOPED_TRACE("case " + std::to_string(c) + ", " + activation_name(cases[c].activation));
    Dit& cpu = *cpus[c];
    Dit& model = dynamic_cast<Dit&>(*models[c]);
    cpu.forward_backward(batches[c], 1.0f);
    const double expect = ref[testing::case_key(c, "loss")].data<float>()[0];
    for (const bool on_device : {false, true}) {
      SCOPED_TRACE(on_device ? "batch on the device" : "batch on the host");
      const Batch b = on_device ? testing::batch_on(batches[c], device()) : batches[c];
      // The draws are host-side and keyed: the same wherever the batch lives.
      const Dit::Draws want = cpu.draw(batches[c]), got = model.draw(b);
      EXPECT_ALL_CLOSE(got.noise, want.noise, 0.0, "noise");
      for (int64_t i = 0; i < 3; ++i) {
        EXPECT_EQ(got.labels.data<int32_t>()[i], want.labels.data<int32_t>()[i]);
        EXPECT_EQ(got.timesteps.data<int32_t>()[i], want.timesteps.data<int32_t>()[i]);
      }
      LossResult eval = model.forward_loss(b);
      EXPECT_NEAR(eval.loss, expect, 1e-5 * expect);
      model.params().zero_grads();
      LossResult train = model.forward_backward(b, 1.0f);
      EXPECT_EQ(train.loss, eval.loss);
      EXPECT_EQ(train.count, 3);
      for (const auto& info : model.params().infos()) {
        const std::string& name = info.spec.name;
        Tensor expected = ref[testing::case_key(c, "grad." + name)];
        EXPECT_ALL_CLOSE(model.params().grad(model.params().find(name)), expected, 1e-4,
                         "grad " + name);
        // Every gradient is non-trivial (the perturbation did its job).
        EXPECT_GT(testing::diff(expected, Tensor::zeros(expected.shape(), DType::f32)).max_abs, 0)
            << name;
      }
      testing::expect_same_grads(model.params(), cpu.params(), 1e-4, "the CPU model");
    }
  }
}

// The DDIM sampler on every device matches the float64 reference, with noise and labels given on
// the host or on the device, with and without clamping each step's x0 to [-1, 1]; sample()
// (noise drawn on the host) equals the CPU model's.
TEST_P(DitDeviceTest, DdimSamplerMatchesTorch) {
  config::DitConfig cfg = tiny_config(config::DitConfig::LINEAR);
  Dit cpu(cfg, false);
  cpu.params().init(4);
  std::unique_ptr<Model> built = device_twin(cfg, cpu, device(), 4);
  Dit& model = dynamic_cast<Dit&>(*built);
  perturb(cpu, 9);
  copy(cpu.params().params(), model.params().params());
  Tensor noise = testing::normal({2, 8, 8, 3}, 50), labels = ints({3, 0});
  NamedTensors in;
  testing::add_param_inputs(in, 0, cpu.params());
  in["case0.sample_noise"] = noise;
  in["case0.sample_labels"] = labels;
  auto at = attrs(0, cfg);
  at["case0.ddim_steps"] = "4";
  at["case0.guidance"] = "3.5";
  NamedTensors plain = testing::run_reference("dit", in, at);
  at["case0.clip_denoised"] = "1";
  NamedTensors clipped = testing::run_reference("dit", in, at);
  Tensor samples = model.sample_from(noise, labels, 3.5f, 4, /*clip_denoised=*/false);
  EXPECT_EQ(samples.device(), device());
  EXPECT_ALL_CLOSE(samples, plain["case0.samples"], 1e-4, "DDIM samples, host inputs");
  Tensor from_device = model.sample_from(to_device(noise, device()), to_device(labels, device()),
                                         3.5f, 4, /*clip_denoised=*/false);
  EXPECT_ALL_CLOSE(from_device, plain["case0.samples"], 1e-4, "DDIM samples, device inputs");
  // Clamping is the default; it changes this random model's samples (its x0 predictions leave
  // [-1, 1]), and the last step's x0 is the sample, so that lies in [-1, 1].
  Tensor with_clip = model.sample_from(noise, labels, 3.5f, 4);
  EXPECT_ALL_CLOSE(with_clip, clipped["case0.samples"], 1e-4, "clipped DDIM samples");
  const Tensor p = to_device(plain["case0.samples"], Device::cpu());
  const Tensor c = to_device(with_clip, Device::cpu());
  float plain_max = 0, clip_max = 0;
  for (int64_t k = 0; k < p.numel(); ++k)
    plain_max = std::max(plain_max, std::abs(p.data<float>()[k]));
  for (int64_t k = 0; k < c.numel(); ++k)
    clip_max = std::max(clip_max, std::abs(c.data<float>()[k]));
  EXPECT_GT(plain_max, 1.5f) << "the test model's unclipped samples should leave [-1, 1]";
  EXPECT_LE(clip_max, 1.0f);
  EXPECT_ALL_CLOSE(model.sample(labels, 2.0f, 3, 17), cpu.sample(labels, 2.0f, 3, 17), 1e-4,
                   "sample() against the CPU model");
  EXPECT_ALL_CLOSE(model.sample(labels, 2.0f, 3, 17, false), cpu.sample(labels, 2.0f, 3, 17, false),
                   1e-4, "sample() without clipping against the CPU model");
}

TESSERA_INSTANTIATE_DEVICE_TESTS(DitDeviceTest);

TEST(DitTest, RecomputationGivesBitwiseEqualGradients) {
  config::DitConfig cfg = tiny_config(config::DitConfig::LINEAR);
  Dit plain(cfg, false), recompute(cfg, true);
  for (Dit* m : {&plain, &recompute}) {
    m->params().init(3);
    perturb(*m, 2);
  }
  Batch batch = image_batch(4, 8);
  LossResult a = plain.forward_backward(batch, 1.0f);
  LossResult b = recompute.forward_backward(batch, 1.0f);
  EXPECT_EQ(a.loss, b.loss);
  ASSERT_EQ(plain.params().numel(), recompute.params().numel());
  EXPECT_EQ(0, std::memcmp(plain.params().grads().raw_data(), recompute.params().grads().raw_data(),
                           plain.params().grads().nbytes()));
}

TEST(DitTest, AdaLnZeroBlockIsIdentityAtInit) {
  ParamStore store;
  AdaLnBlockOptions o;
  o.dim = 32;
  o.n_heads = 4;
  AdaLnBlock block(store, "block", o);
  store.finalize();
  store.init(5);
  Tensor x = testing::normal({3, 7, 32}, 1), c = testing::normal({3, 32}, 2);
  Tensor y = block.forward(x, c);
  EXPECT_EQ(0, std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()));
  // And the test can fail: with a non-zero gate the block moves x.
  fill_normal(store.params(), 1, 1, 0.0f, 0.1f);
  y = block.forward(x, c);
  EXPECT_NE(0, std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()));

  // The whole model predicts exactly zero noise at init (zero final layer).
  Dit model(tiny_config(config::DitConfig::LINEAR), false);
  model.params().init(5);
  Tensor eps = model.predict_eps(testing::normal({2, 8, 8, 3}, 3), ints({10, 900}), ints({1, 5}));
  EXPECT_EQ(testing::diff(eps, Tensor::zeros(eps.shape(), DType::f32)).max_abs, 0);
}

TEST(DitTest, KeyedDrawsDoNotDependOnTheBatch) {
  Dit model(tiny_config(config::DitConfig::COSINE), false);
  Batch eight = image_batch(8, 3);
  eight["sample_keys"] = keys({100, 101, 102, 103, 104, 105, 106, 107});
  Batch one = {{"images", eight["images"].slice(5, 6)},
               {"labels", eight["labels"].slice(5, 6)},
               {"sample_keys", keys({105})}};
  Dit::Draws d8 = model.draw(eight), d1 = model.draw(one);
  EXPECT_EQ(d8.timesteps.data<int32_t>()[5], d1.timesteps.data<int32_t>()[0]);
  EXPECT_EQ(d8.labels.data<int32_t>()[5], d1.labels.data<int32_t>()[0]);
  EXPECT_EQ(0,
            std::memcmp(d8.noise.slice(5, 6).raw_data(), d1.noise.raw_data(), d1.noise.nbytes()));
  // Different keys draw different timesteps and noise; about half the labels are dropped.
  int distinct_t = 0, dropped = 0;
  for (int b = 0; b < 8; ++b) {
    distinct_t += d8.timesteps.data<int32_t>()[b] != d8.timesteps.data<int32_t>()[0];
    dropped += d8.labels.data<int32_t>()[b] == 5;
  }
  EXPECT_GE(distinct_t, 5);
  EXPECT_GE(dropped, 1);
  EXPECT_LE(dropped, 7);
  EXPECT_NE(0, std::memcmp(d8.noise.slice(0, 1).raw_data(), d8.noise.slice(1, 2).raw_data(),
                           d1.noise.nbytes()));
  // The seed changes the draws.
  model.set_seed(1);
  Dit::Draws other = model.draw(one);
  EXPECT_NE(0, std::memcmp(other.noise.raw_data(), d1.noise.raw_data(), d1.noise.nbytes()));
}

TEST(DitTest, SamplingIsDeterministicGivenTheSeed) {
  Dit model(tiny_config(config::DitConfig::LINEAR), false);
  model.params().init(6);
  perturb(model, 4);
  Tensor labels = ints({1, 4, 2});
  Tensor a = model.sample(labels, 2.0f, 3, 42), b = model.sample(labels, 2.0f, 3, 42);
  Tensor c = model.sample(labels, 2.0f, 3, 43);
  EXPECT_EQ(0, std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()));
  EXPECT_NE(0, std::memcmp(a.raw_data(), c.raw_data(), a.nbytes()));
  EXPECT_EQ(a.shape(), (Shape{3, 8, 8, 3}));
}

TEST(DitTest, BadBatchesNameTensorAndShapes) {
  Dit model(tiny_config(config::DitConfig::LINEAR), false);
  auto message = [&](const Batch& batch) -> std::string {
    try {
      model.forward_loss(batch);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  Batch batch = image_batch(3, 1);
  Batch bad = batch;
  bad["images"] = testing::uniform({3, 8, 8, 4}, 1);
  EXPECT_EQ(message(bad),
            "Dit: batch tensor \"images\" must be f32(3, 8, 8, 3), got f32(3, 8, 8, 4) cpu");
  bad = batch;
  bad["labels"] = Tensor::zeros({3}, DType::i64);
  EXPECT_EQ(message(bad), "Dit: batch tensor \"labels\" must be i32(3), got i64(3) cpu");
  bad = batch;
  bad.erase("sample_keys");
  EXPECT_EQ(message(bad), "Dit: the batch has no \"sample_keys\" tensor");
  bad = batch;
  bad["noise"] = testing::normal({2, 8, 8, 3}, 1);
  EXPECT_EQ(message(bad),
            "Dit: batch tensor \"noise\" must be f32(3, 8, 8, 3), got f32(2, 8, 8, 3) cpu");
  bad = batch;
  bad["timesteps"] = ints({0, 1, 1000});
  EXPECT_EQ(message(bad), "Dit: timestep 1000 at 2 is outside [0, 1000)");
  bad = batch;
  bad["labels"] = ints({0, 6, 1});
  EXPECT_EQ(message(bad), "Dit: label 6 at 1 is outside [0, 5]");
}

}  // namespace
}  // namespace tessera::models
