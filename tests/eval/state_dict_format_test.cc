// timm and open_clip interop (eval/state_dict_format.h, eval/timm_vit.h, eval/open_clip.h)
// against the real libraries (tests/eval/state_dict_check.py under REPO/.venv, installed by
// scripts/setup):
//   import: a randomly initialised timm VisionTransformer's state dict, imported with the head
//           count from --set, gives timm's logits within 1e-4 (timm's exact GELU and eps 1e-6
//           taken as its defaults);
//   export: a tessera ViT (trained a step) exported with --format timm loads strictly into
//           timm's VisionTransformer and gives tessera's logits within 1e-4;
//   the same both ways for open_clip's CLIP (image and text embeddings), with its default exact
//   GELU and with QuickGELU.
#include "eval/state_dict_format.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "core/safetensors.h"
#include "eval/load.h"
#include "models/clip.h"
#include "models/vit.h"
#include "nlohmann/json.hpp"
#include "tests/support/reference.h"
#include "tests/train/train_test_support.h"
#include "train/trainer.h"

namespace tessera::eval {
namespace {

using train::testing_support::run_dir;

// Runs the timm script; fails the test with a hint when the venv lacks timm.
void python(const std::string& args) {
  const std::string py = testing::source_path(".venv/bin/python");
  ASSERT_TRUE(std::filesystem::exists(py)) << py << " missing: run ./scripts/setup";
  const std::string cmd =
      py + " " + testing::source_path("tests/eval/state_dict_check.py") + " " + args;
  ASSERT_EQ(std::system(cmd.c_str()), 0)
      << cmd << " failed (timm installed? ./scripts/setup installs it into .venv)";
}

// logits (B, classes) of the ViT checkpoint at `run` for images (B, S, S, C).
Tensor vit_logits(const std::string& run, const Tensor& images) {
  auto lm = load_checkpoint_model(run);
  TESSERA_CHECK(lm.ok(), lm.status().ToString());
  return to_device(static_cast<models::Vit&>(*lm->model).forward_logits(images), Device::cpu());
}

double max_diff(const Tensor& a, const Tensor& b) {
  TESSERA_CHECK(a.numel() == b.numel(), a.describe(), " vs ", b.describe());
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    worst = std::max(worst, double(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
  }
  return worst;
}

// Without and with timm's norm_pre (tessera's pre_norm).
class TimmVitImport : public ::testing::TestWithParam<bool> {};

TEST_P(TimmVitImport, GivesTimmLogits) {
  const bool pre_norm = GetParam();
  const std::string dir = run_dir(pre_norm ? "timm_vit_pre_norm" : "timm_vit");
  std::filesystem::remove_all(dir);
  python("make_timm " + dir + (pre_norm ? " 1" : " 0"));
  const std::string run = dir + "_run";
  std::filesystem::remove_all(run);
  absl::Status s = import_state_dict("timm", dir + "/model.safetensors", run, config::Config(),
                                     {"model.vit.transformer.n_heads=4"});
  ASSERT_TRUE(s.ok()) << s;
  auto ckpt = checkpoint::open_checkpoint(run);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const config::VitConfig& v = ckpt->config.model().vit();
  EXPECT_EQ(v.image_size(), 32);
  EXPECT_EQ(v.patch(), 8);
  EXPECT_EQ(v.n_classes(), 10);
  EXPECT_EQ(v.pre_norm(), pre_norm);
  EXPECT_EQ(v.transformer().d_model(), 64);
  EXPECT_EQ(v.transformer().n_layers(), 2);
  EXPECT_EQ(v.transformer().mlp_ratio(), 4);
  EXPECT_EQ(v.transformer().activation(), config::TransformerConfig::GELU_ERF);
  EXPECT_EQ(v.transformer().layer_norm_eps(), 1e-6f);
  auto check = read_safetensors(dir + "/check.safetensors");
  ASSERT_TRUE(check.ok()) << check.status();
  const double d = max_diff(vit_logits(run, check->at("images")), check->at("logits"));
  std::printf("timm import%s: max |tessera - timm| = %.3g\n", pre_norm ? " (norm_pre)" : "", d);
  EXPECT_LT(d, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(PreNorm, TimmVitImport, ::testing::Bool());

TEST(TimmVit, ImportNamesWhatTheStateDictLacks) {
  const std::string dir = run_dir("timm_vit_errors");
  std::filesystem::remove_all(dir);
  python("make_timm " + dir);
  // No head count: named with the --set that gives it.
  absl::Status s =
      import_state_dict("timm", dir + "/model.safetensors", dir + "_run", config::Config());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("--set model.vit.transformer.n_heads=H"),
            std::string::npos)
      << s;
  // A tensor missing: named, with the file.
  auto sd = read_safetensors(dir + "/model.safetensors");
  ASSERT_TRUE(sd.ok());
  sd->erase("blocks.1.attn.proj.bias");
  const std::string cut = dir + "/cut.safetensors";
  ASSERT_TRUE(write_safetensors(cut, *sd).ok());
  s = import_state_dict("timm", cut, dir + "_run", config::Config(),
                        {"model.vit.transformer.n_heads=4"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find(cut), std::string::npos) << s;
  EXPECT_NE(std::string(s.message()).find("no tensor blocks.1.attn.proj.bias"), std::string::npos)
      << s;
  // A tensor of another architecture (LayerScale) is named, not dropped.
  sd = read_safetensors(dir + "/model.safetensors");
  ASSERT_TRUE(sd.ok());
  (*sd)["blocks.0.ls1.gamma"] = Tensor::zeros({64}, DType::f32);
  ASSERT_TRUE(write_safetensors(cut, *sd).ok());
  s = import_state_dict("timm", cut, dir + "_run", config::Config(),
                        {"model.vit.transformer.n_heads=4"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("unexpected tensor blocks.0.ls1.gamma"),
            std::string::npos)
      << s;
}

// Without and with pre_norm (timm's norm_pre, and its bias-free patch convolution).
class TimmVitExport : public ::testing::TestWithParam<bool> {};

TEST_P(TimmVitExport, LoadsInTimmWithTesseraLogits) {
  const bool pre_norm = GetParam();
  auto cfg = train::testing_support::load(
      "configs/vit_tiny.pbtxt",
      {"train.steps=1", "data.global_batch_size=8", "train.peak_flops=1e9",
       "model.vit.transformer.activation=GELU_ERF", "model.vit.transformer.layer_norm_eps=1e-6",
       std::string("model.vit.pre_norm=") + (pre_norm ? "true" : "false")});
  const std::string run = run_dir(pre_norm ? "timm_vit_export_pre_norm" : "timm_vit_export");
  std::filesystem::remove_all(run);
  {
    train::Trainer t(cfg, run, true);
    ASSERT_EQ(t.run(), train::kExitOk);
  }
  auto ckpt = checkpoint::open_checkpoint(run);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const std::string out = run + "_timm";
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out);
  absl::Status s = export_state_dict("timm", *ckpt, out + "/model.safetensors");
  ASSERT_TRUE(s.ok()) << s;
  Tensor images = Tensor::empty({3, 32, 32, 3}, DType::f32);
  for (int64_t i = 0; i < images.numel(); ++i) {
    images.data<float>()[i] = float(std::sin(0.37 * double(i)));
  }
  ASSERT_TRUE(write_safetensors(out + "/inputs.safetensors", {{"images", images}}).ok());
  const auto& v = cfg.model().vit();
  python(absl::StrCat("timm_logits ", out, "/model.safetensors ", out, " ", v.image_size(), " ",
                      v.patch(), " ", v.transformer().d_model(), " ", v.transformer().n_layers(),
                      " ", v.transformer().n_heads(), " ", v.n_classes(), pre_norm ? " 1" : " 0"));
  auto timm = read_safetensors(out + "/hf_outputs.safetensors");
  ASSERT_TRUE(timm.ok()) << timm.status();
  const double d = max_diff(vit_logits(run, images), timm->at("logits"));
  std::printf("timm export%s: max |tessera - timm| = %.3g\n", pre_norm ? " (norm_pre)" : "", d);
  EXPECT_LT(d, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(PreNorm, TimmVitExport, ::testing::Bool());

// The L2-normalised image and text embeddings of the CLIP checkpoint at `run`.
NamedTensors clip_embeds(const std::string& run, const NamedTensors& in) {
  auto lm = load_checkpoint_model(run);
  TESSERA_CHECK(lm.ok(), lm.status().ToString());
  auto& clip = static_cast<models::Clip&>(*lm->model);
  return {{"image_embeds", to_device(clip.encode_images(in.at("images")), Device::cpu())},
          {"text_embeds",
           to_device(clip.encode_text(in.at("text"), in.at("text_eot")), Device::cpu())}};
}

void expect_embeds_close(const NamedTensors& got, const NamedTensors& want,
                         const std::string& what) {
  for (const char* name : {"image_embeds", "text_embeds"}) {
    const double d = max_diff(got.at(name), want.at(name));
    std::printf("%s %s: max |tessera - open_clip| = %.3g\n", what.c_str(), name, d);
    EXPECT_LT(d, 1e-4) << what << " " << name;
  }
}

class OpenClip : public ::testing::TestWithParam<const char*> {};

TEST_P(OpenClip, ImportGivesOpenClipEmbeddings) {
  const std::string act = GetParam();
  const bool quick = act == "quick_gelu";
  const std::string dir = run_dir("open_clip_" + act);
  std::filesystem::remove_all(dir);
  python("make_open_clip " + dir + " " + act);
  const std::string run = dir + "_run";
  std::filesystem::remove_all(run);
  std::vector<std::string> sets = {"model.clip.image.transformer.n_heads=4",
                                   "model.clip.text.transformer.n_heads=4"};
  if (quick) {
    sets.push_back("model.clip.image.transformer.activation=QUICK_GELU");
    sets.push_back("model.clip.text.transformer.activation=QUICK_GELU");
  }
  absl::Status s =
      import_state_dict("open_clip", dir + "/model.safetensors", run, config::Config(), sets);
  ASSERT_TRUE(s.ok()) << s;
  auto ckpt = checkpoint::open_checkpoint(run);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const config::ClipConfig& c = ckpt->config.model().clip();
  EXPECT_EQ(c.embed_dim(), 24);
  EXPECT_EQ(c.image().image_size(), 16);
  EXPECT_TRUE(c.image().pre_norm());
  EXPECT_EQ(c.text().vocab_size(), 50);
  EXPECT_EQ(c.text().context(), 10);
  for (const auto* t : {&c.image().transformer(), &c.text().transformer()}) {
    EXPECT_EQ(t->n_layers(), 2);
    EXPECT_EQ(t->activation(),
              quick ? config::TransformerConfig::QUICK_GELU : config::TransformerConfig::GELU_ERF);
  }
  auto check = read_safetensors(dir + "/check.safetensors");
  ASSERT_TRUE(check.ok()) << check.status();
  expect_embeds_close(clip_embeds(run, *check), *check, "open_clip import " + act);
}

TEST_P(OpenClip, ExportLoadsInOpenClipWithTesseraEmbeddings) {
  const std::string act = GetParam();
  const std::string enum_name = act == "quick_gelu" ? "QUICK_GELU" : "GELU_ERF";
  auto cfg = train::testing_support::load(
      "configs/clip_tiny.pbtxt",
      {"train.steps=1", "data.global_batch_size=8", "train.peak_flops=1e9",
       "model.clip.image.transformer.n_layers=1", "model.clip.text.transformer.n_layers=1",
       "model.clip.image.pre_norm=true", "model.clip.image.transformer.activation=" + enum_name,
       "model.clip.text.transformer.activation=" + enum_name});
  const std::string run = run_dir("open_clip_export_" + act);
  std::filesystem::remove_all(run);
  {
    train::Trainer t(cfg, run, true);
    ASSERT_EQ(t.run(), train::kExitOk);
  }
  auto ckpt = checkpoint::open_checkpoint(run);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const std::string out = run + "_open_clip";
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out);
  absl::Status s = export_state_dict("open_clip", *ckpt, out + "/model.safetensors");
  ASSERT_TRUE(s.ok()) << s;
  const config::ClipConfig& c = cfg.model().clip();
  const auto &it = c.image().transformer(), &tt = c.text().transformer();
  nlohmann::json dims = {{"image_layers", it.n_layers()}, {"image_width", it.d_model()},
                         {"image_heads", it.n_heads()},   {"image_mlp_ratio", it.mlp_ratio()},
                         {"patch", c.image().patch()},    {"image_size", c.image().image_size()},
                         {"context", c.text().context()}, {"vocab", c.text().vocab_size()},
                         {"text_width", tt.d_model()},    {"text_heads", tt.n_heads()},
                         {"text_layers", tt.n_layers()},  {"text_mlp_ratio", tt.mlp_ratio()},
                         {"embed", c.embed_dim()},        {"quick_gelu", act == "quick_gelu"}};
  std::ofstream(out + "/dims.json") << dims.dump();
  // Text whose end-of-text token (V - 1) is its largest id, as open_clip's pooling needs.
  const int64_t B = 3, S = c.image().image_size(), L = c.text().context(),
                V = c.text().vocab_size();
  Tensor images = Tensor::empty({B, S, S, 3}, DType::f32);
  for (int64_t i = 0; i < images.numel(); ++i) {
    images.data<float>()[i] = float(std::sin(0.11 * double(i)));
  }
  Tensor text = Tensor::zeros({B, L}, DType::i32), eot = Tensor::empty({B}, DType::i32);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t e = std::min<int64_t>(5 + 9 * b, L - 1);
    eot.data<int32_t>()[b] = int32_t(e);
    for (int64_t t = 0; t < e; ++t)
      text.data<int32_t>()[b * L + t] = int32_t((b * 131 + t * 17) % (V - 1));
    text.data<int32_t>()[b * L + e] = int32_t(V - 1);
  }
  const NamedTensors in{{"images", images}, {"text", text}, {"text_eot", eot}};
  ASSERT_TRUE(write_safetensors(out + "/inputs.safetensors", in).ok());
  python("open_clip_embeds " + out + "/model.safetensors " + out);
  auto oc = read_safetensors(out + "/hf_outputs.safetensors");
  ASSERT_TRUE(oc.ok()) << oc.status();
  expect_embeds_close(clip_embeds(run, in), *oc, "open_clip export " + act);
}

INSTANTIATE_TEST_SUITE_P(Activations, OpenClip, ::testing::Values("gelu", "quick_gelu"),
                         [](const auto& info) { return std::string(info.param); });

TEST(OpenClipErrors, NamesWhatIsMissing) {
  const std::string dir = run_dir("open_clip_errors");
  std::filesystem::remove_all(dir);
  python("make_open_clip " + dir + " gelu");
  // No head counts: both named with the --set that gives them.
  absl::Status s =
      import_state_dict("open_clip", dir + "/model.safetensors", dir + "_run", config::Config());
  ASSERT_FALSE(s.ok());
  const std::string m(s.message());
  EXPECT_NE(m.find("--set model.clip.image.transformer.n_heads=H"), std::string::npos) << m;
  EXPECT_NE(m.find("--set model.clip.text.transformer.n_heads=H"), std::string::npos) << m;
  // An unknown tensor (another architecture's) is named.
  auto sd = read_safetensors(dir + "/model.safetensors");
  ASSERT_TRUE(sd.ok());
  (*sd)["visual.attn_pool.query"] = Tensor::zeros({4}, DType::f32);
  const std::string odd = dir + "/odd.safetensors";
  ASSERT_TRUE(write_safetensors(odd, *sd).ok());
  s = import_state_dict(
      "open_clip", odd, dir + "_run", config::Config(),
      {"model.clip.image.transformer.n_heads=4", "model.clip.text.transformer.n_heads=4"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("unexpected tensor visual.attn_pool.query"),
            std::string::npos)
      << s;
}

}  // namespace
}  // namespace tessera::eval
