// Hugging Face interop (eval/hf_format.h) against the real transformers library
// (tests/eval/hf_format_check.py under REPO/.venv, installed by scripts/setup), one table row per
// model and architecture setting:
//   import: a randomly initialised GPT2LMHeadModel / ViTForImageClassification / CLIPModel saved
//           with save_pretrained, imported, gives transformers' logits or embeddings within 1e-4,
//           with each architecture's defaults (ViT: erf GELU, eps 1e-12; CLIP: quick_gelu;
//           GPT-2: gelu_new) and the other settings matched through config;
//   export: a tessera model (trained a step) exported with --format hf loads with from_pretrained
//           and gives tessera's outputs within 1e-4.
#include "eval/hf_format.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "eval/hf_clip.h"
#include "eval/hf_gpt2.h"
#include "eval/hf_vit.h"
#include "eval/load.h"
#include "models/clip.h"
#include "models/gpt.h"
#include "models/vit.h"
#include "tests/support/reference.h"
#include "tests/train/train_test_support.h"
#include "train/trainer.h"

namespace tessera::eval {
namespace {

using train::testing_support::run_dir;

constexpr double kTolerance = 1e-4;

// Runs the transformers script; fails the test with a hint when the venv lacks transformers.
void python(const std::string& args) {
  const std::string py = testing::source_path(".venv/bin/python");
  ASSERT_TRUE(std::filesystem::exists(py)) << py << " missing: run ./scripts/setup";
  const std::string cmd =
      py + " " + testing::source_path("tests/eval/hf_format_check.py") + " " + args;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << " failed (transformers installed? "
                                         << "./scripts/setup installs it into .venv)";
}

// The model's outputs for `in`, under the names hf_format_check.py uses: GPT "logits" (B, T, Vp),
// ViT "logits" (B, classes), CLIP "image_embeds" and "text_embeds" (L2-normalised).
NamedTensors tessera_outputs(const std::string& run, const NamedTensors& in) {
  auto lm = load_checkpoint_model(run);
  TESSERA_CHECK(lm.ok(), lm.status().ToString());
  const Device cpu = Device::cpu();
  if (auto* gpt = dynamic_cast<models::Gpt*>(lm->model.get())) {
    return {{"logits", to_device(gpt->forward_logits(in.at("tokens")), cpu)}};
  }
  if (auto* vit = dynamic_cast<models::Vit*>(lm->model.get())) {
    return {{"logits", to_device(vit->forward_logits(in.at("images")), cpu)}};
  }
  auto& clip = dynamic_cast<models::Clip&>(*lm->model);
  return {{"image_embeds", to_device(clip.encode_images(in.at("images")), cpu)},
          {"text_embeds", to_device(clip.encode_text(in.at("text"), in.at("text_eot")), cpu)}};
}

// max |got - want| over `want`'s elements; rows of `got` may be longer (a padded vocabulary).
double max_diff(const Tensor& got, const Tensor& want) {
  const int64_t cols = want.dim(-1), rows = want.numel() / cols, stride = got.dim(-1);
  TESSERA_CHECK(got.numel() / stride == rows && stride >= cols, got.describe(), " vs ",
                want.describe());
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      worst = std::max(worst, double(std::fabs(got.data<float>()[r * stride + c] -
                                               want.data<float>()[r * cols + c])));
    }
  }
  return worst;
}

const char* const kOutputs[] = {"logits", "image_embeds", "text_embeds"};

// Each output of `want` present in `got` within kTolerance; the worst differences printed.
void expect_outputs_close(const NamedTensors& got, const NamedTensors& want,
                          const std::string& what) {
  int compared = 0;
  for (const char* name : kOutputs) {
    if (!want.count(name)) continue;
    ASSERT_TRUE(got.count(name)) << what << ": tessera gave no " << name;
    const double d = max_diff(got.at(name), want.at(name));
    std::printf("%s %s: max |tessera - transformers| = %.3g\n", what.c_str(), name, d);
    EXPECT_LT(d, kTolerance) << what << " " << name;
    ++compared;
  }
  EXPECT_GT(compared, 0) << what;
}

// One saved-with-save_pretrained model: the script's make arguments and what the import must
// set in tessera's config.
struct ImportCase {
  const char* name;
  const char* kind;  // gpt2, vit, clip
  const char* act;   // HF activation name, or "default"
  const char* eps;   // HF LayerNorm eps, or "default"
  bool tied;         // GPT-2 only
  config::TransformerConfig::Activation want_activation;
  float want_eps;  // 0: unset (tessera's 1e-5)
};

using A = config::TransformerConfig;
const ImportCase kImports[] = {
    {"gpt2_tied", "gpt2", "default", "default", true, A::GELU_TANH, 0},
    {"gpt2_untied", "gpt2", "gelu_new", "1e-5", false, A::GELU_TANH, 0},
    {"gpt2_erf", "gpt2", "gelu", "1e-6", true, A::GELU_ERF, 1e-6f},
    {"vit_defaults", "vit", "default", "default", false, A::GELU_ERF, 1e-12f},
    {"vit_tanh", "vit", "gelu_pytorch_tanh", "1e-5", false, A::GELU_TANH, 0},
    {"clip_defaults", "clip", "default", "default", false, A::QUICK_GELU, 0},
    {"clip_tanh", "clip", "gelu_pytorch_tanh", "1e-5", false, A::GELU_TANH, 0},
    {"clip_erf", "clip", "gelu", "1e-6", false, A::GELU_ERF, 1e-6f},
};

// The transformer configs of a model config (CLIP: image, text).
std::vector<config::TransformerConfig> stacks(const config::ModelConfig& m) {
  if (m.has_gpt()) return {m.gpt().transformer()};
  if (m.has_vit()) return {m.vit().transformer()};
  return {m.clip().image().transformer(), m.clip().text().transformer()};
}

class HfImport : public ::testing::TestWithParam<ImportCase> {};

TEST_P(HfImport, GivesTransformersOutputs) {
  const ImportCase& c = GetParam();
  const std::string hf = run_dir(std::string("hf_import_") + c.name);
  std::filesystem::remove_all(hf);
  python(absl::StrCat("make ", c.kind, " ", hf, " ", c.act, " ", c.eps, c.tied ? " 1" : " 0"));
  const std::string run = hf + "_run";
  std::filesystem::remove_all(run);
  absl::Status s = import_hf(hf, run, config::Config());
  ASSERT_TRUE(s.ok()) << s;
  auto check = read_safetensors(hf + "/check.safetensors");
  ASSERT_TRUE(check.ok()) << check.status();
  auto ckpt = checkpoint::open_checkpoint(run);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  for (const auto& t : stacks(ckpt->config.model())) {
    EXPECT_EQ(t.activation(), c.want_activation) << c.name;
    EXPECT_EQ(t.has_layer_norm_eps(), c.want_eps != 0) << c.name;
    if (c.want_eps != 0) EXPECT_EQ(t.layer_norm_eps(), c.want_eps) << c.name;
  }
  expect_outputs_close(tessera_outputs(run, *check), *check, std::string("import ") + c.name);
  // Where the setting is not tessera's original one, the same weights with tanh GELU and eps
  // 1e-5 give outputs off by several times the tolerance: the comparison above could fail.
  if (c.want_activation != A::GELU_TANH || c.want_eps != 0) {
    double apart = 0;
    for (const char* name : kOutputs) {
      if (check->count(name)) {
        apart = std::max(apart, max_diff(check->at(name), check->at(std::string("alt_") + name)));
      }
    }
    std::printf("import %s: the original settings would be off by %.3g\n", c.name, apart);
    // 5x: the two GELU forms differ by at most ~2e-4 per element, so GPT-2's logits move by
    // only ~9e-4 (the others by 1e-3 to 1e-2).
    EXPECT_GT(apart, 5 * kTolerance) << c.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, HfImport, ::testing::ValuesIn(kImports),
                         [](const auto& info) { return std::string(info.param.name); });

// One tessera model trained a step and exported: its config and overrides, the HF config values
// the export must write, and the inputs to compare on.
struct ExportCase {
  const char* name;
  const char* config;
  std::vector<std::string> sets;
  const char* hf_act_key;  // config.json's activation (CLIP: in vision_config and text_config)
  const char* want_act;
  const char* hf_eps_key;
  double want_eps;
};

// Inputs for the exported model of `m` (tessera layouts).
NamedTensors export_inputs(const config::ModelConfig& m) {
  if (m.has_gpt()) {
    const int32_t V = m.gpt().vocab_size();
    Tensor tokens = Tensor::empty({2, 20}, DType::i32);
    for (int64_t i = 0; i < tokens.numel(); ++i) tokens.data<int32_t>()[i] = int32_t((i * 37) % V);
    return {{"tokens", tokens}};
  }
  const config::VitConfig& v = m.has_vit() ? m.vit() : m.clip().image();
  const int64_t B = 3, S = v.image_size();
  Tensor images = Tensor::empty({B, S, S, v.channels()}, DType::f32);
  for (int64_t i = 0; i < images.numel(); ++i) {
    images.data<float>()[i] = float(std::sin(0.11 * double(i)));
  }
  if (m.has_vit()) return {{"images", images}};
  const int64_t L = m.clip().text().context(), V = m.clip().text().vocab_size();
  Tensor text = Tensor::zeros({B, L}, DType::i32), eot = Tensor::empty({B}, DType::i32);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t e = std::min<int64_t>(5 + 9 * b, L - 1);  // HF pools at the first V - 1
    eot.data<int32_t>()[b] = int32_t(e);
    for (int64_t t = 0; t < e; ++t)
      text.data<int32_t>()[b * L + t] = int32_t((b * 131 + t * 17) % (V - 1));
    text.data<int32_t>()[b * L + e] = int32_t(V - 1);
  }
  return {{"images", images}, {"text", text}, {"text_eot", eot}};
}

const std::string kStep = "train.steps=1";
const ExportCase kExports[] = {
    // A padded vocabulary: export drops the padding rows.
    {"gpt_tied",
     "configs/gpt_tiny.pbtxt",
     {kStep, "data.global_batch_size=4", "model.gpt.vocab_size=500",
      "model.gpt.vocab_pad_multiple=64", "model.gpt.tie_embedding=true"},
     "activation_function",
     "gelu_new",
     "layer_norm_epsilon",
     1e-5},
    {"gpt_untied_erf",
     "configs/gpt_tiny.pbtxt",
     {kStep, "data.global_batch_size=4", "model.gpt.vocab_size=500",
      "model.gpt.vocab_pad_multiple=64", "model.gpt.tie_embedding=false",
      "model.gpt.transformer.activation=GELU_ERF", "model.gpt.transformer.layer_norm_eps=1e-6"},
     "activation_function",
     "gelu",
     "layer_norm_epsilon",
     1e-6},
    {"vit_tanh",
     "configs/vit_tiny.pbtxt",
     {kStep, "data.global_batch_size=8"},
     "hidden_act",
     "gelu_pytorch_tanh",
     "layer_norm_eps",
     1e-5},
    {"vit_hf_defaults",
     "configs/vit_tiny.pbtxt",
     {kStep, "data.global_batch_size=8", "model.vit.transformer.activation=GELU_ERF",
      "model.vit.transformer.layer_norm_eps=1e-12"},
     "hidden_act",
     "gelu",
     "layer_norm_eps",
     1e-12},
    {"clip_tanh",
     "configs/clip_tiny.pbtxt",
     {kStep, "data.global_batch_size=8", "model.clip.image.transformer.n_layers=1",
      "model.clip.text.transformer.n_layers=1", "model.clip.image.pre_norm=true"},
     "hidden_act",
     "gelu_pytorch_tanh",
     "layer_norm_eps",
     1e-5},
    {"clip_quick_gelu",
     "configs/clip_tiny.pbtxt",
     {kStep, "data.global_batch_size=8", "model.clip.image.transformer.n_layers=1",
      "model.clip.text.transformer.n_layers=1", "model.clip.image.pre_norm=true",
      "model.clip.image.transformer.activation=QUICK_GELU",
      "model.clip.text.transformer.activation=QUICK_GELU"},
     "hidden_act",
     "quick_gelu",
     "layer_norm_eps",
     1e-5},
};

class HfExport : public ::testing::TestWithParam<ExportCase> {};

TEST_P(HfExport, LoadsInTransformersWithTesseraOutputs) {
  const ExportCase& c = GetParam();
  std::vector<std::string> sets = c.sets;
  sets.push_back("train.peak_flops=1e9");
  auto cfg = train::testing_support::load(c.config, sets);
  const std::string run = run_dir(std::string("hf_export_") + c.name);
  std::filesystem::remove_all(run);
  {
    train::Trainer t(cfg, run, true);
    ASSERT_EQ(t.run(), train::kExitOk);
  }
  auto ckpt = checkpoint::open_checkpoint(run);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const std::string out = run + "_hf";
  std::filesystem::remove_all(out);
  absl::Status s = export_hf(*ckpt, out);
  ASSERT_TRUE(s.ok()) << s;
  // config.json says the setting (per tower for CLIP), with eps as written in the config.
  nlohmann::json j = nlohmann::json::parse(std::ifstream(out + "/config.json"));
  std::vector<nlohmann::json> sections = {j};
  if (cfg.model().has_clip()) sections = {j["vision_config"], j["text_config"]};
  for (const nlohmann::json& sec : sections) {
    EXPECT_EQ(sec.value(c.hf_act_key, std::string()), c.want_act) << c.name;
    EXPECT_EQ(sec.value(c.hf_eps_key, 0.0), c.want_eps) << c.name;
  }
  const NamedTensors in = export_inputs(cfg.model());
  ASSERT_TRUE(write_safetensors(out + "/inputs.safetensors", in).ok());
  python("outputs " + out);
  auto hf = read_safetensors(out + "/hf_outputs.safetensors");
  ASSERT_TRUE(hf.ok()) << hf.status();
  expect_outputs_close(tessera_outputs(run, in), *hf, std::string("export ") + c.name);
}

INSTANTIATE_TEST_SUITE_P(Models, HfExport, ::testing::ValuesIn(kExports),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(HfConfig, UnmatchedSettingsAreNamed) {
  // An activation tessera has no kernel for, and a bad eps: refused, naming the fields.
  auto v = vit_config_from_hf(
      nlohmann::json::parse(R"({"model_type": "vit", "hidden_act": "relu", "layer_norm_eps": 0})"),
      "config.json");
  ASSERT_FALSE(v.ok());
  const std::string m(v.status().message());
  EXPECT_NE(m.find("hidden_act \"relu\""), std::string::npos) << m;
  EXPECT_NE(m.find("layer_norm_eps 0"), std::string::npos) << m;
  auto g = gpt_config_from_hf(nlohmann::json::parse(R"({"activation_function": "silu"})"),
                              "config.json");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(std::string(g.status().message()).find("activation_function \"silu\""),
            std::string::npos)
      << g.status();
  auto c = clip_config_from_hf(
      nlohmann::json::parse(R"({"text_config": {"layer_norm_eps": "small"}})"), "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("text_config.layer_norm_eps: not a number"),
            std::string::npos)
      << c.status();
}

TEST(HfConfig, ClipWithoutPreNormIsNotACLIPModel) {
  // Without the image tower's pre-LN there is no CLIPModel to write: named.
  auto plain = train::testing_support::load(
      "configs/clip_tiny.pbtxt",
      {"model.clip.image.transformer.n_layers=1", "model.clip.text.transformer.n_layers=1"});
  auto j = hf_config_from_clip(plain.model().clip());
  ASSERT_FALSE(j.ok());
  EXPECT_NE(std::string(j.status().message()).find("pre_norm"), std::string::npos);
}

}  // namespace
}  // namespace tessera::eval
