// `tessera eval` on real shards: a CLIP trained on image-caption shards of four colour classes
// (PNGs packed by data::pack_images with a SentencePiece tokenizer trained on the captions),
// evaluated on the val split with zero-shot prompts; and the bad uses (no tokenizer, a wrong
// tokenizer, a missing split, a split of another resolution, a checkpoint of another family) with
// their messages.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "data_pipeline/pack.h"
#include "data_pipeline/tokenizer.h"
#include "eval/canvas.h"
#include "eval/load.h"
#include "eval/prompt_tokenizer.h"
#include "eval/run_eval.h"
#include "eval/split.h"
#include "tests/support/reference.h"
#include "train/trainer.h"

namespace tessera::eval {
namespace {
namespace fs = std::filesystem;

const std::vector<std::string> kColours = {"red", "green", "blue", "yellow"};
const uint8_t kRgb[4][3] = {{220, 30, 30}, {30, 200, 40}, {30, 40, 220}, {230, 220, 30}};

std::string caption(int k, int i) {
  static const char* kThings[] = {"ball", "house", "tree", "car", "star"};
  return "a clip art of a " + kColours[k] + " " + kThings[i % 5] + " (" + kColours[k] + ")";
}

// Writes n PNG images of S x S into DIR/images (class i % 4: a coloured square at a random
// place on a noisy background) and DIR/index.jsonl for `tessera pack`.
void write_images(const fs::path& dir, int n, int S, uint32_t seed) {
  fs::create_directories(dir / "images");
  std::ofstream index(dir / "index.jsonl");
  std::mt19937 rng(seed);
  for (int i = 0; i < n; ++i) {
    const int k = i % 4;
    Canvas c(S, S);
    const int x0 = int(rng() % (S / 2)), y0 = int(rng() % (S / 2));
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) {
        const uint8_t g = uint8_t(100 + rng() % 60);
        c.set(x, y, {g, g, g});
      }
    c.fill_rect(x0, y0, x0 + S / 2 - 1, y0 + S / 2 - 1, {kRgb[k][0], kRgb[k][1], kRgb[k][2]});
    const std::string name = "images/" + std::to_string(seed) + "_" + std::to_string(i) + ".png";
    ASSERT_TRUE(write_png((dir / name).string(), c).ok());
    index << nlohmann::json{{"path", name},
                            {"caption", caption(k, i / 4)},
                            {"label", k},
                            {"label_name", kColours[k]}}
                 .dump()
          << "\n";
  }
}

// Packs DIR/index.jsonl into DIR/packed/{train,val}.pbtxt with tokens of `model`.
void pack(const fs::path& dir, int S, const std::string& model, double val_fraction) {
  data::PackOptions o;
  o.index_path = (dir / "index.jsonl").string();
  o.out_dir = (dir / "packed").string();
  o.resolution = S;
  o.tokenizer_model = model;
  o.context = 32;
  o.val_fraction = val_fraction;
  auto r = data::pack_images(o);
  ASSERT_TRUE(r.ok()) << r.status();
}

class ClipSplitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::path(::testing::TempDir()) / "clip_split_eval");
    fs::remove_all(*root_);
    fs::create_directories(*root_ / "data");
    const fs::path data = *root_ / "data";
    {
      std::ofstream corpus(data / "captions.txt");
      for (int rep = 0; rep < 4; ++rep)
        for (int i = 0; i < 40; ++i) corpus << caption(i % 4, i / 4) << "\n";
    }
    data::TokenizerTrainOptions topt;
    topt.vocab_size = 40;  // an upper bound (hard_vocab_limit false)
    ASSERT_TRUE(
        data::train_tokenizer((data / "captions.txt").string(), (data / "tok").string(), topt)
            .ok());
    model_ = new std::string((data / "tok.model").string());
    write_images(data, 200, 16, 1);
    pack(data, 16, *model_, 0.25);
    train::TrainOptions o;
    o.config_path = testing::source_path("configs/clip_tiny.pbtxt");
    o.overrides = {"data.source=" + (data / "packed" / "train.pbtxt").string(),
                   "train.steps=60",
                   "data.global_batch_size=16",
                   "log.every_steps=20",
                   "schedule.warmup_steps=5",
                   "optim.lr=2e-3",
                   "model.clip.image.image_size=16",
                   "model.clip.image.patch=4",
                   "model.clip.image.transformer.n_layers=1",
                   "model.clip.text.transformer.n_layers=1",
                   "model.clip.text.vocab_size=64"};
    o.run_dir = (*root_ / "run").string();
    o.quiet = true;
    ASSERT_EQ(train::run_train(o), train::kExitOk);
  }
  static void TearDownTestSuite() {
    delete root_;
    delete model_;
  }
  static fs::path* root_;
  static std::string* model_;
};
fs::path* ClipSplitTest::root_ = nullptr;
std::string* ClipSplitTest::model_ = nullptr;

TEST_F(ClipSplitTest, ZeroShotOnTheValSplitBeatsChance) {
  EvalOptions o;
  o.checkpoint = (*root_ / "run").string();
  auto r = run_eval(o);
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("%s", format_eval_table(*r).c_str());
  EXPECT_EQ((*r)["family"], "clip");
  auto val = data::load_manifest((*root_ / "data" / "packed" / "val.pbtxt").string());
  ASSERT_TRUE(val.ok());
  EXPECT_GE(val->num_samples(), 20);
  EXPECT_EQ((*r)["n_samples"], val->num_samples());
  EXPECT_EQ((*r)["n_classes"], 4);
  EXPECT_DOUBLE_EQ((*r)["chance_top1"].get<double>(), 0.25);
  // Classes alternate (i % 4) over the packed images, so no class holds much more than 1/4.
  EXPECT_GE((*r)["majority_top1"].get<double>(), 0.25);
  EXPECT_LT((*r)["majority_top1"].get<double>(), 0.5);
  EXPECT_EQ((*r)["split"], (*root_ / "data" / "packed" / "val.pbtxt").string());
  EXPECT_GT((*r)["zero_shot_top1"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ((*r)["zero_shot_top5"].get<double>(), 1.0);  // 4 classes: all within top 5
  for (const char* k : {"image_to_text_r1", "image_to_text_r5", "image_to_text_r10",
                        "text_to_image_r1", "text_to_image_r5", "text_to_image_r10"}) {
    EXPECT_TRUE(r->contains(k)) << k;
  }
}

TEST_F(ClipSplitTest, PromptTokensAreThePackedLayout) {
  // A prompt equal to a packed caption tokenises to the very row `tessera pack` stored, with
  // the tokenizer found through the manifest (tokenizer_model beside it).
  const std::string manifest = (*root_ / "data" / "packed" / "val.pbtxt").string();
  auto split = load_split(manifest);
  ASSERT_TRUE(split.ok()) << split.status();
  auto model = find_tokenizer(manifest, split->manifest, "");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(fs::path(*model).filename(), "tokenizer.model");
  for (int64_t i : {int64_t(0), split->n - 1}) {
    auto p = tokenize_prompts(*model, {split->captions[i]}, {"{}"}, 32);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->tokens, std::vector<int32_t>(split->tokens.begin() + i * 32,
                                              split->tokens.begin() + (i + 1) * 32))
        << split->captions[i];
    EXPECT_EQ(p->eot[0], split->eot[i]);
  }
}

TEST_F(ClipSplitTest, BadUseGivesClearErrors) {
  const fs::path data = *root_ / "data";
  EvalOptions o;
  o.checkpoint = (*root_ / "run").string();
  // A split that does not exist.
  o.split = (data / "test.pbtxt").string();
  auto r = run_eval(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("test.pbtxt: no such manifest"), std::string::npos)
      << r.status();
  // A tokenizer other than the one the split was packed with.
  o.split = "val";
  {
    std::ofstream other(data / "other.model");
    other << "not a sentencepiece model";
  }
  o.tokenizer = (data / "other.model").string();
  r = run_eval(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is not the tokenizer"), std::string::npos) << r.status();
  fs::remove(data / "other.model");
  // No tokenizer at all: the .model moved away.
  o.tokenizer.clear();
  // (the parent of the manifest's directory is searched too, so it goes further away).
  fs::create_directories(*root_ / "away" / "deeper");
  const fs::path away = *root_ / "away" / "deeper";
  fs::rename(data / "tok.model", away / "tok.model");
  fs::rename(data / "packed" / "tokenizer.model", away / "tokenizer.model");
  r = run_eval(o);
  fs::rename(away / "tok.model", data / "tok.model");
  fs::rename(away / "tokenizer.model", data / "packed" / "tokenizer.model");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sentencepiece:fnv1a64:"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("pass --tokenizer"), std::string::npos) << r.status();
  // A split of another resolution.
  write_images(*root_ / "other", 8, 8, 3);
  pack(*root_ / "other", 8, *model_, 1.0);
  o.split = (*root_ / "other" / "packed" / "val.pbtxt").string();
  r = run_eval(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("resolution 8 does not match"), std::string::npos)
      << r.status();
  // A checkpoint of another family for a family-specific verb.
  auto lm = load_checkpoint_model((*root_ / "run").string());
  ASSERT_TRUE(lm.ok());
  const absl::Status s = expect_family(*lm, {"gpt"}, "generate");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("is a clip checkpoint; tessera generate needs gpt"), std::string::npos)
      << s;
  // Not a checkpoint at all.
  o.checkpoint = data.string();
  o.split = "val";
  r = run_eval(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(data.string()), std::string::npos) << r.status();
}

}  // namespace
}  // namespace tessera::eval
