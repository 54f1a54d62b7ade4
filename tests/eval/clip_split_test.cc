// `tessera eval` on real shards: a CLIP trained on packed, tokenised image-caption shards of four
// colour classes, evaluated on the val split with zero-shot prompts tokenised through the
// SentencePiece tools; and the bad uses (no tokenizer, a wrong tokenizer, a missing split, a
// split of another resolution, a checkpoint of another family) with their messages.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "data_pipeline/pack.h"
#include "data_pipeline/shard_writer.h"
#include "eval/load.h"
#include "eval/prompt_tokenizer.h"
#include "eval/run_eval.h"
#include "google/protobuf/text_format.h"
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

// Writes DIR/SPLIT-00000.h5 and DIR/SPLIT.pbtxt: n images of S x S, class i % 4, a coloured
// square on a noisy background, captions tokenised by `model` (ids, end-of-text 2, pad 0).
void write_split(const fs::path& dir, const std::string& split, int n, int S, int L,
                 const std::string& model, uint32_t seed) {
  std::vector<std::string> captions;
  for (int i = 0; i < n; ++i) captions.push_back(caption(i % 4, i / 4));
  auto ids = spm_encode(model, captions);
  ASSERT_TRUE(ids.ok()) << ids.status();
  auto hash = data::file_content_hash(model);
  ASSERT_TRUE(hash.ok());
  data::ShardWriterOptions wo;
  wo.resolution = S;
  wo.token_length = L;
  wo.labels = true;
  wo.tokenizer = "sentencepiece:" + *hash;
  const std::string shard = split + "-00000.h5";
  auto w = data::ShardWriter::create((dir / shard).string(), wo);
  ASSERT_TRUE(w.ok()) << w.status();
  std::mt19937 rng(seed);
  for (int i = 0; i < n; ++i) {
    const int k = i % 4;
    std::vector<uint8_t> img(size_t(S) * S * 3);
    const int x0 = int(rng() % (S / 2)), y0 = int(rng() % (S / 2));
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        for (int c = 0; c < 3; ++c) {
          const bool in = x >= x0 && x < x0 + S / 2 && y >= y0 && y < y0 + S / 2;
          img[(y * S + x) * 3 + c] = in ? kRgb[k][c] : uint8_t(100 + rng() % 60);
        }
    std::vector<int32_t> t = (*ids)[i];
    if (int(t.size()) > L - 1) t.resize(L - 1);
    t.push_back(2);  // end-of-text
    ASSERT_TRUE((*w)->append({img, captions[i], t, k}).ok());
  }
  ASSERT_TRUE((*w)->finish().ok());
  data::Manifest m;
  m.set_format_version(1);
  m.set_resolution(S);
  m.set_tokenizer(wo.tokenizer);
  m.set_token_length(L);
  for (const auto& c : kColours) m.add_label_names(c);
  m.set_split(split);
  m.set_num_samples(n);
  auto* info = m.add_shards();
  info->set_path(shard);
  info->set_num_samples(n);
  info->set_bytes(int64_t(fs::file_size(dir / shard)));
  auto shard_hash = data::file_content_hash((dir / shard).string());
  ASSERT_TRUE(shard_hash.ok());
  info->set_content_hash(*shard_hash);
  std::string text;
  google::protobuf::TextFormat::PrintToString(m, &text);
  std::ofstream(dir / (split + ".pbtxt")) << text;
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
    // The ids tessera's tokenizer uses (data_pipeline/tokenizer.h): pad 0, unk 1, eos 2, no bos.
    const std::string cmd =
        "spm_train --input=" + (data / "captions.txt").string() +
        " --model_prefix=" + (data / "tok").string() +
        " --vocab_size=40 --hard_vocab_limit=false --pad_id=0 --unk_id=1 --eos_id=2 --bos_id=-1"
        " --minloglevel=2 > /dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << " (Debian package sentencepiece)";
    model_ = new std::string((data / "tok.model").string());
    write_split(data, "train", 128, 16, 32, *model_, 1);
    write_split(data, "val", 48, 16, 32, *model_, 2);

    train::TrainOptions o;
    o.config_path = testing::source_path("configs/clip_tiny.pbtxt");
    o.overrides = {"data.source=" + (data / "train.pbtxt").string(),
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
  EXPECT_EQ((*r)["n_samples"], 48);
  EXPECT_EQ((*r)["n_classes"], 4);
  EXPECT_DOUBLE_EQ((*r)["chance_top1"].get<double>(), 0.25);
  EXPECT_EQ((*r)["split"], (*root_ / "data" / "val.pbtxt").string());
  EXPECT_GT((*r)["zero_shot_top1"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ((*r)["zero_shot_top5"].get<double>(), 1.0);  // 4 classes: all within top 5
  for (const char* k : {"image_to_text_r1", "image_to_text_r5", "image_to_text_r10",
                        "text_to_image_r1", "text_to_image_r5", "text_to_image_r10"}) {
    EXPECT_TRUE(r->contains(k)) << k;
  }
}

TEST_F(ClipSplitTest, PromptTokensAreThePackedLayout) {
  // A prompt equal to a packed caption tokenises to the very row the shard stores.
  auto p = tokenize_prompts(*model_, {"red ball"}, {"a clip art of a {} (red)"}, 32);
  ASSERT_TRUE(p.ok()) << p.status();
  auto ids = spm_encode(*model_, {caption(0, 0)});
  ASSERT_TRUE(ids.ok());
  std::vector<int32_t> want = (*ids)[0];
  ASSERT_LT(want.size(), 31u);
  EXPECT_EQ(p->eot[0], int32_t(want.size()));
  want.push_back(2);
  want.resize(32, 0);
  EXPECT_EQ(p->tokens, want);
  auto text = spm_decode(*model_, (*ids)[0]);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, caption(0, 0));
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
  fs::rename(data / "tok.model", *root_ / "away" / "deeper" / "tok.model");
  r = run_eval(o);
  fs::rename(*root_ / "away" / "deeper" / "tok.model", data / "tok.model");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sentencepiece:fnv1a64:"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("pass --tokenizer"), std::string::npos) << r.status();
  // A split of another resolution.
  fs::create_directories(*root_ / "other");
  write_split(*root_ / "other", "val", 8, 8, 32, *model_, 3);
  o.split = (*root_ / "other" / "val.pbtxt").string();
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
