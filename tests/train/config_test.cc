#include "train/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "models/factory.h"
#include "tests/support/reference.h"

namespace tessera::train {
namespace {

using ::testing::HasSubstr;  // NOLINT

std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  auto r = parse_config(text, "bad.pbtxt", overrides);
  return r.ok() ? "no error" : std::string(r.status().message());
}

TEST(Config, EveryShippedConfigLoadsAndValidates) {
  int n = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(testing::source_path("configs"))) {
    if (entry.path().extension() != ".pbtxt") continue;
    auto c = load_config(entry.path().string());
    EXPECT_TRUE(c.ok()) << c.status();
    ++n;
  }
  EXPECT_GE(n, 10);
}

TEST(Config, BenchShapesAreTheIssuesShapes) {
  auto gpt = load_config(testing::source_path("configs/bench/gpt.pbtxt"));
  ASSERT_TRUE(gpt.ok()) << gpt.status();
  EXPECT_EQ(gpt->model().gpt().vocab_size(), 8192);
  EXPECT_EQ(gpt->model().gpt().transformer().d_model(), 384);
  EXPECT_EQ(gpt->data().global_batch_size(), 8);
  auto clip = load_config(testing::source_path("configs/bench/clip.pbtxt"));
  ASSERT_TRUE(clip.ok()) << clip.status();
  EXPECT_EQ(clip->model().clip().text().context(), 32);
  EXPECT_EQ(clip->model().clip().image().channels(), 3);
  EXPECT_EQ(clip->data().global_batch_size(), 64);
}

TEST(Config, DefaultsFillWhatTheFileLeavesOutAndTheFileWins) {
  auto c = parse_config(
      "model { gpt { vocab_size: 10 context: 4 transformer { d_model: 8 "
      "n_layers: 1 n_heads: 2 } } }\noptim { weight_decay: 0 }",
      "x.pbtxt");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model().gpt().transformer().mlp_ratio(), 4);
  EXPECT_FLOAT_EQ(c->optim().lr(), 3e-4f);
  EXPECT_FLOAT_EQ(c->optim().weight_decay(), 0.0f);  // written as 0: replaces the default 0.1
  EXPECT_EQ(c->parallel().tensor_parallel(), 1);
}

TEST(Config, SetOverridesTheDesignFieldPaths) {
  auto c = load_config(
      testing::source_path("configs/gpt_tiny.pbtxt"),
      {"train.steps=3", "train.seed=99", "train.deterministic=true", "data.global_batch_size=4",
       "data.source=/data/manifest.pbtxt", "parallel.tensor_parallel=2", "parallel.zero_stage=1",
       "checkpoint.every_steps=5", "checkpoint.keep_last=2", "checkpoint.async=true",
       "log.every_steps=1", "optim.lr=0.01", "schedule.kind=CONSTANT",
       "model.gpt.transformer.n_layers=3"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->train().steps(), 3);
  EXPECT_EQ(c->train().seed(), 99u);
  EXPECT_TRUE(c->train().deterministic());
  EXPECT_EQ(c->data().source(), "/data/manifest.pbtxt");
  EXPECT_EQ(c->parallel().zero_stage(), 1);
  EXPECT_TRUE(c->checkpoint().async());
  EXPECT_FLOAT_EQ(c->optim().lr(), 0.01f);
  EXPECT_EQ(c->schedule().kind(), config::ScheduleConfig::CONSTANT);
  EXPECT_EQ(c->model().gpt().transformer().n_layers(), 3);
}

TEST(Config, BadSetsNameTheArgumentAndField) {
  const std::string gpt =
      "model { gpt { vocab_size: 10 context: 4 transformer { d_model: 8 n_layers: 1 n_heads: 2 } } "
      "}";
  EXPECT_EQ(error_of(gpt, {"train.stepz=3"}),
            "--set train.stepz=3: TrainConfig has no field 'stepz'");
  EXPECT_THAT(error_of(gpt, {"train.steps=many"}),
              HasSubstr("--set train.steps=many: 'many' is not a valid int64"));
  EXPECT_THAT(error_of(gpt, {"train.steps"}), HasSubstr("expected PATH=VALUE"));
  EXPECT_THAT(error_of(gpt, {"model.vit.patch=4"}),
              HasSubstr("the config's kind is 'gpt', not 'vit'"));
  EXPECT_THAT(error_of(gpt, {"schedule.kind=LINEAR"}), HasSubstr("not a valid enum of Kind"));
  EXPECT_THAT(error_of(gpt, {"train=3"}), HasSubstr("is a message"));
}

TEST(Config, UnknownFieldsAndWrongTypesNameFileLineAndField) {
  EXPECT_THAT(error_of("train {\n  stepz: 3\n}"),
              HasSubstr("bad.pbtxt:2:8: Message type \"tessera.config.TrainConfig\" has no field "
                        "named \"stepz\". (in: stepz: 3)"));
  EXPECT_THAT(error_of("train {\n  steps: \"three\"\n}"), HasSubstr("bad.pbtxt:2:10:"));
  EXPECT_THAT(error_of("train {\n  steps: \"three\"\n}"), HasSubstr("(in: steps: \"three\")"));
}

TEST(Config, ImpossibleShapesNameFileLineAndField) {
  EXPECT_EQ(
      error_of("model {\n gpt {\n  vocab_size: 10 context: 4\n  transformer {\n   d_model: 384\n"
               "   n_layers: 1\n   n_heads: 5\n  }\n }\n}"),
      "bad.pbtxt:7: model.gpt.transformer.n_heads: 5 heads do not divide "
      "model.gpt.transformer.d_model = 384");
  EXPECT_EQ(error_of("model { vit {\n image_size: 30\n patch: 8\n n_classes: 3\n"
                     " transformer { d_model: 8 n_layers: 1 n_heads: 2 } } }"),
            "bad.pbtxt:3: model.vit.patch: patch 8 does not divide model.vit.image_size = 30");
  EXPECT_EQ(error_of(""), "bad.pbtxt: model: no model given (one of gpt, vit, clip, dit)");
  // A bad value that came from --set has no line in the file.
  EXPECT_EQ(error_of("model { gpt { vocab_size: 10 context: 4 transformer { d_model: 8 n_layers: 1 "
                     "n_heads: 2 } } }",
                     {"parallel.zero_stage=4"}),
            "bad.pbtxt: parallel.zero_stage: must be 0, 1, 2 or 3, got 4");
  // The LayerNorm eps (TransformerConfig.layer_norm_eps) when set; its activation by name.
  EXPECT_EQ(
      error_of("model { vit {\n image_size: 32\n patch: 8\n n_classes: 3\n"
               " transformer { d_model: 8 n_layers: 1 n_heads: 2\n layer_norm_eps: 0 } } }"),
      "bad.pbtxt:6: model.vit.transformer.layer_norm_eps: must be a finite number > 0, got 0");
  EXPECT_NE(error_of("model { clip { text { transformer { activation: RELU } } } }").find("RELU"),
            std::string::npos);
}

// An old config (no activation, no layer_norm_eps) resolves to the same text as before: the
// fields stay unset, so a checkpoint's stored model config still equals a resumed run's.
TEST(Config, ActivationAndEpsStayUnsetUnlessWritten) {
  auto c = load_config(testing::source_path("configs/vit_tiny.pbtxt"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->model().vit().transformer().has_activation());
  EXPECT_FALSE(c->model().vit().transformer().has_layer_norm_eps());
  EXPECT_EQ(config_to_text(*c).find("layer_norm_eps"), std::string::npos);
  auto set = load_config(testing::source_path("configs/vit_tiny.pbtxt"),
                         {"model.vit.transformer.activation=QUICK_GELU",
                          "model.vit.transformer.layer_norm_eps=1e-12"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->model().vit().transformer().activation(), config::TransformerConfig::QUICK_GELU);
  EXPECT_EQ(set->model().vit().transformer().layer_norm_eps(), 1e-12f);
  auto again = parse_config(config_to_text(*set), "resolved");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), set->SerializeAsString());
}

// The training recipes' fields (docs/RECIPES.md): ranges, and the model families they apply to.
TEST(Config, RecipeFieldsAreCheckedAndNamed) {
  const std::string gpt =
      "model { gpt { vocab_size: 10 context: 4 transformer { d_model: 8 n_layers: 1 n_heads: 2 } } "
      "}";
  const std::string dit =
      "model { dit { image_size: 8 patch: 4 transformer { d_model: 8 n_layers: 1 n_heads: 2 } } }";
  EXPECT_EQ(error_of(gpt, {"optim.label_smoothing=1"}),
            "bad.pbtxt: optim.label_smoothing: must be in [0, 1)");
  EXPECT_EQ(error_of(dit, {"optim.label_smoothing=0.1"}),
            "bad.pbtxt: optim.label_smoothing: applies to ViT and GPT only");
  EXPECT_EQ(error_of(gpt, {"data.mixup_alpha=0.2"}),
            "bad.pbtxt: data.mixup_alpha: applies to ViT only");
  EXPECT_EQ(error_of(gpt, {"data.cutmix_alpha=-1"}), "bad.pbtxt: data.cutmix_alpha: must be >= 0");
  EXPECT_EQ(error_of(gpt, {"data.mix_prob=2"}), "bad.pbtxt: data.mix_prob: must be in [0, 1]");
  EXPECT_EQ(error_of(gpt, {"train.ema_decay=1"}), "bad.pbtxt: train.ema_decay: must be in [0, 1)");
  EXPECT_EQ(error_of(gpt, {"model.dropout=1.5"}), "bad.pbtxt: model.dropout: must be in [0, 1)");
  EXPECT_EQ(error_of(dit, {"model.drop_path=0.1"}),
            "bad.pbtxt: model.drop_path: applies to GPT, ViT and CLIP only");
  EXPECT_EQ(error_of(dit, {"distill.teacher=/runs/t"}),
            "bad.pbtxt: distill.teacher: applies to ViT, GPT and CLIP students only");
}

TEST(Config, MissingFileIsNamed) {
  auto r = load_config("/nonexistent/x.pbtxt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "/nonexistent/x.pbtxt: cannot open config file");
}

TEST(Config, ResolvedTextRoundTrips) {
  auto c = load_config(testing::source_path("configs/bench/dit.pbtxt"));
  ASSERT_TRUE(c.ok());
  auto again = parse_config(config_to_text(*c), "resolved");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), c->SerializeAsString());
  EXPECT_EQ(models::model_kind(*c), "dit");
}

}  // namespace
}  // namespace tessera::train
