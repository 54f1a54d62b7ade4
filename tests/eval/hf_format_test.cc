// Hugging Face GPT-2 interop (eval/hf_gpt2.h) against the real transformers library
// (tests/eval/hf_format_check.py under REPO/.venv, installed by scripts/setup):
//   import: a randomly initialised GPT2LMHeadModel saved with save_pretrained, imported, gives
//           transformers' logits within 1e-4;
//   export: a tessera GPT (trained a step, tied and untied head) exported with --format hf loads
//           with from_pretrained and gives tessera's logits within 1e-4.
#include "eval/hf_format.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

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

// Runs the transformers script; fails the test with a hint when the venv lacks transformers.
void python(const std::string& args) {
  const std::string py = testing::source_path(".venv/bin/python");
  ASSERT_TRUE(std::filesystem::exists(py)) << py << " missing: run ./scripts/setup";
  const std::string cmd =
      py + " " + testing::source_path("tests/eval/hf_format_check.py") + " " + args;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << " failed (transformers installed? "
                                         << "./scripts/setup installs it into .venv)";
}

// logits (B, T, V) of the GPT checkpoint at `run` for `tokens` (B, T) i32.
Tensor tessera_logits(const std::string& run, const Tensor& tokens) {
  auto lm = load_checkpoint_model(run);
  TESSERA_CHECK(lm.ok(), lm.status().ToString());
  auto& gpt = static_cast<models::Gpt&>(*lm->model);
  return to_device(gpt.forward_logits(tokens), Device::cpu());
}

void expect_close(const Tensor& got, const Tensor& want, int64_t vocab, const std::string& what) {
  ASSERT_EQ(got.dim(0) * got.dim(1), want.dim(0) * want.dim(1)) << what;
  ASSERT_EQ(want.dim(-1), vocab) << what;
  const int64_t rows = want.numel() / vocab, stride = got.dim(-1);  // tessera may pad V
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t v = 0; v < vocab; ++v) {
      worst = std::max(worst, double(std::fabs(got.data<float>()[r * stride + v] -
                                               want.data<float>()[r * vocab + v])));
    }
  }
  std::printf("%s: max |tessera - transformers| = %.3g\n", what.c_str(), worst);
  EXPECT_LT(worst, 1e-4) << what << ": max |tessera - transformers| = " << worst;
}

class HfGpt2 : public ::testing::TestWithParam<bool> {};

TEST_P(HfGpt2, ImportGivesTransformersLogits) {
  const bool tied = GetParam();
  const std::string hf = run_dir(tied ? "hf_gpt2_tied" : "hf_gpt2_untied");
  std::filesystem::remove_all(hf);
  python("make " + hf + (tied ? " 1" : " 0"));
  const std::string run = hf + "_run";
  std::filesystem::remove_all(run);
  absl::Status s = import_hf(hf, run, config::Config());
  ASSERT_TRUE(s.ok()) << s;
  auto check = read_safetensors(hf + "/check.safetensors");
  ASSERT_TRUE(check.ok()) << check.status();
  const Tensor got = tessera_logits(run, check->at("tokens"));
  expect_close(got, check->at("logits"), 61, "import");
}

TEST_P(HfGpt2, ExportLoadsInTransformersWithTesseraLogits) {
  const bool tied = GetParam();
  auto cfg = train::testing_support::load(
      "configs/gpt_tiny.pbtxt",
      {"train.steps=1", "data.global_batch_size=4", "train.peak_flops=1e9",
       std::string("model.gpt.tie_embedding=") + (tied ? "true" : "false"),
       // A padded vocabulary: export drops the padding rows.
       "model.gpt.vocab_size=500", "model.gpt.vocab_pad_multiple=64"});
  const std::string run = run_dir(tied ? "hf_export_tied" : "hf_export_untied");
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
  Tensor tokens = Tensor::empty({2, 20}, DType::i32);
  for (int64_t i = 0; i < tokens.numel(); ++i) tokens.data<int32_t>()[i] = int32_t((i * 37) % 500);
  ASSERT_TRUE(write_safetensors(out + "/tokens.safetensors", {{"tokens", tokens}}).ok());
  python("logits " + out);
  auto hf = read_safetensors(out + "/hf_logits.safetensors");
  ASSERT_TRUE(hf.ok()) << hf.status();
  expect_close(tessera_logits(run, tokens), hf->at("logits"), 500, "export");
}

INSTANTIATE_TEST_SUITE_P(TiedAndUntied, HfGpt2, ::testing::Values(true, false));

// logits (B, classes) of the ViT checkpoint at `run` for images (B, S, S, C).
Tensor vit_logits(const std::string& run, const Tensor& images) {
  auto lm = load_checkpoint_model(run);
  TESSERA_CHECK(lm.ok(), lm.status().ToString());
  return to_device(static_cast<models::Vit&>(*lm->model).forward_logits(images), Device::cpu());
}

TEST(HfVit, ImportGivesTransformersLogits) {
  const std::string hf = run_dir("hf_vit");
  std::filesystem::remove_all(hf);
  python("make_vit " + hf);
  const std::string run = hf + "_run";
  std::filesystem::remove_all(run);
  absl::Status s = import_hf(hf, run, config::Config());
  ASSERT_TRUE(s.ok()) << s;
  auto check = read_safetensors(hf + "/check.safetensors");
  ASSERT_TRUE(check.ok()) << check.status();
  const Tensor got = vit_logits(run, check->at("images"));
  const Tensor& want = check->at("logits");
  ASSERT_EQ(got.numel(), want.numel());
  double worst = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    worst = std::max(worst, double(std::fabs(got.data<float>()[i] - want.data<float>()[i])));
  }
  std::printf("vit import: max |tessera - transformers| = %.3g\n", worst);
  EXPECT_LT(worst, 1e-4);
}

TEST(HfVit, ExportLoadsInTransformersWithTesseraLogits) {
  auto cfg = train::testing_support::load(
      "configs/vit_tiny.pbtxt",
      {"train.steps=1", "data.global_batch_size=8", "train.peak_flops=1e9"});
  const std::string run = run_dir("hf_vit_export");
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
  Tensor images = Tensor::empty({3, 32, 32, 3}, DType::f32);
  for (int64_t i = 0; i < images.numel(); ++i) {
    images.data<float>()[i] = float(std::sin(0.37 * double(i)));
  }
  ASSERT_TRUE(write_safetensors(out + "/images.safetensors", {{"images", images}}).ok());
  python("vit_logits " + out);
  auto hf = read_safetensors(out + "/hf_logits.safetensors");
  ASSERT_TRUE(hf.ok()) << hf.status();
  const Tensor got = vit_logits(run, images);
  const Tensor& want = hf->at("logits");
  ASSERT_EQ(got.numel(), want.numel());
  double worst = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    worst = std::max(worst, double(std::fabs(got.data<float>()[i] - want.data<float>()[i])));
  }
  std::printf("vit export: max |tessera - transformers| = %.3g\n", worst);
  EXPECT_LT(worst, 1e-4);
}

TEST(HfVit, HuggingFaceDefaultsAreNamed) {
  // HF's ViT defaults (erf GELU, eps 1e-12) differ from tessera's: refused, naming both fields.
  auto v = vit_config_from_hf(nlohmann::json::parse(R"({"model_type": "vit"})"), "config.json");
  ASSERT_FALSE(v.ok());
  const std::string m(v.status().message());
  EXPECT_NE(m.find("hidden_act \"gelu\""), std::string::npos) << m;
  EXPECT_NE(m.find("layer_norm_eps 1e-12"), std::string::npos) << m;
}

// max |a - b| over two f32 tensors of the same size.
double max_diff(const Tensor& a, const Tensor& b) {
  TESSERA_CHECK(a.numel() == b.numel(), a.describe(), " vs ", b.describe());
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    worst = std::max(worst, double(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
  }
  return worst;
}

// The L2-normalised image and text embeddings of the CLIP checkpoint at `run`.
std::pair<Tensor, Tensor> clip_embeds(const std::string& run, const NamedTensors& in) {
  auto lm = load_checkpoint_model(run);
  TESSERA_CHECK(lm.ok(), lm.status().ToString());
  auto& clip = static_cast<models::Clip&>(*lm->model);
  return {to_device(clip.encode_images(in.at("images")), Device::cpu()),
          to_device(clip.encode_text(in.at("text"), in.at("text_eot")), Device::cpu())};
}

TEST(HfClip, ImportGivesTransformersEmbeddings) {
  const std::string hf = run_dir("hf_clip");
  std::filesystem::remove_all(hf);
  python("make_clip " + hf);
  const std::string run = hf + "_run";
  std::filesystem::remove_all(run);
  absl::Status s = import_hf(hf, run, config::Config());
  ASSERT_TRUE(s.ok()) << s;
  auto check = read_safetensors(hf + "/check.safetensors");
  ASSERT_TRUE(check.ok()) << check.status();
  const auto [img, txt] = clip_embeds(run, *check);
  const double di = max_diff(img, check->at("image_embeds"));
  const double dt = max_diff(txt, check->at("text_embeds"));
  std::printf("clip import: max |tessera - transformers| image %.3g, text %.3g\n", di, dt);
  EXPECT_LT(di, 1e-4);
  EXPECT_LT(dt, 1e-4);
}

TEST(HfClip, ExportLoadsInTransformersWithTesseraEmbeddings) {
  auto cfg = train::testing_support::load(
      "configs/clip_tiny.pbtxt",
      {"train.steps=1", "data.global_batch_size=8", "train.peak_flops=1e9",
       "model.clip.image.transformer.n_layers=1", "model.clip.text.transformer.n_layers=1",
       "model.clip.image.pre_norm=true"});
  const std::string run = run_dir("hf_clip_export");
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
  const int64_t B = 3, S = 64, L = 32, V = 2048;
  Tensor images = Tensor::empty({B, S, S, 3}, DType::f32);
  for (int64_t i = 0; i < images.numel(); ++i) {
    images.data<float>()[i] = float(std::sin(0.11 * double(i)));
  }
  Tensor text = Tensor::zeros({B, L}, DType::i32), eot = Tensor::empty({B}, DType::i32);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t e = 5 + 9 * b;  // HF pools at the first eos_token_id (V - 1)
    eot.data<int32_t>()[b] = int32_t(e);
    for (int64_t t = 0; t < e; ++t)
      text.data<int32_t>()[b * L + t] = int32_t((b * 131 + t * 17) % (V - 1));
    text.data<int32_t>()[b * L + e] = int32_t(V - 1);
  }
  const NamedTensors in{{"images", images}, {"text", text}, {"text_eot", eot}};
  ASSERT_TRUE(write_safetensors(out + "/inputs.safetensors", in).ok());
  python("clip_embeds " + out);
  auto hf = read_safetensors(out + "/hf_embeds.safetensors");
  ASSERT_TRUE(hf.ok()) << hf.status();
  const auto [img, txt] = clip_embeds(run, in);
  const double di = max_diff(img, hf->at("image_embeds"));
  const double dt = max_diff(txt, hf->at("text_embeds"));
  std::printf("clip export: max |tessera - transformers| image %.3g, text %.3g\n", di, dt);
  EXPECT_LT(di, 1e-4);
  EXPECT_LT(dt, 1e-4);
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
