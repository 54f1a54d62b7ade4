// pack_images end to end on the PNG fixtures of tests/data/images: what the shards hold equals
// decode + resize of the inputs exactly, labels/captions/tokens round-trip, the split follows
// split_of and is reproducible byte for byte, bad inputs are skipped and reported, and
// load_manifest names the manifest and the shard it finds at fault.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/tokenizer.h"
#include "tests/support/reference.h"

namespace tessera::data {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int kResolution = 8;

fs::path temp_dir(const std::string& name) {
  static const fs::path root = [] {
    auto d = fs::path(::testing::TempDir()) / absl::StrCat("tessera_pack_test_", getpid());
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  fs::path d = root / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

struct Input {
  std::string path, caption, label_name;
};

// The six fixtures (several colour types and bit depths), two label names in first-appearance
// order "gray", "color".
std::vector<Input> fixture_inputs() {
  std::vector<Input> in;
  for (const char* name : {"gray8", "rgb8", "gray_alpha8", "rgba8", "rgb16", "palette2_trns"}) {
    in.push_back({tessera::testing::source_path(absl::StrCat("tests/data/images/", name, ".png")),
                  absl::StrCat("a picture called ", name),
                  std::string(name).rfind("gray", 0) == 0 ? "gray" : "color"});
  }
  return in;
}

std::string write_index(const fs::path& dir, const std::vector<Input>& inputs,
                        const std::string& extra_lines = "") {
  const std::string path = (dir / "index.jsonl").string();
  std::ofstream out(path);
  for (const Input& i : inputs)
    out << R"({"path": ")" << i.path << R"(", "caption": ")" << i.caption << R"(", "label_name": ")"
        << i.label_name << "\"}\n";
  out << extra_lines;
  return path;
}

struct Packed {
  std::vector<uint8_t> image;
  int32_t label = -1;
  std::string split;
  std::vector<int32_t> tokens;
  int32_t token_length = 0;
};

// Every sample of every shard the report lists, by caption; also checks each manifest loads.
std::map<std::string, Packed> read_back(const PackReport& report, const fs::path& dir) {
  std::map<std::string, Packed> out;
  for (const SplitReport& split : report.splits) {
    if (split.num_samples == 0) continue;
    auto manifest = load_manifest(split.manifest, /*verify_hashes=*/true);
    EXPECT_TRUE(manifest.ok()) << manifest.status();
    if (manifest.ok()) EXPECT_EQ(manifest->num_samples(), split.num_samples);
    for (const std::string& shard : split.shards) {
      auto reader = ShardReader::open((dir / shard).string());
      EXPECT_TRUE(reader.ok()) << reader.status();
      if (!reader.ok()) continue;
      EXPECT_EQ((*reader)->resolution(), kResolution);
      auto s = (*reader)->read(0, (*reader)->num_samples());
      EXPECT_TRUE(s.ok()) << s.status();
      if (!s.ok()) continue;
      const size_t image_bytes = kResolution * kResolution * 3;
      const int64_t L = (*reader)->token_length();
      for (int64_t i = 0; i < s->count; ++i) {
        Packed& p = out[s->captions[i]];
        p.image.assign(s->images.begin() + i * image_bytes,
                       s->images.begin() + (i + 1) * image_bytes);
        p.label = s->labels.empty() ? -1 : s->labels[i];
        p.split = split.split;
        if (L > 0) {
          p.tokens.assign(s->tokens.begin() + i * L, s->tokens.begin() + (i + 1) * L);
          p.token_length = s->token_lengths[i];
        }
      }
    }
  }
  return out;
}

PackOptions options_for(const std::string& index, const fs::path& out) {
  PackOptions o;
  o.index_path = index;
  o.out_dir = out.string();
  o.resolution = kResolution;
  o.samples_per_shard = 2;
  o.val_fraction = 0.4;
  return o;
}

TEST(Pack, ShardsHoldTheResizedInputsLabelsAndCaptionsAndReportSkips) {
  const fs::path dir = temp_dir("roundtrip");
  const auto inputs = fixture_inputs();
  const std::string index =
      write_index(dir, inputs,
                  R"({"path": "no_such_image.png", "caption": "gone", "label_name": "gray"})"
                  "\n"
                  R"({"path": ")" +
                      inputs[0].path + R"(", "caption": "", "label_name": "gray"})" + "\n");
  int64_t progress_calls = 0;
  PackOptions o = options_for(index, dir / "out");
  o.progress = [&](int64_t done, int64_t total) {
    ++progress_calls;
    EXPECT_EQ(total, 8);
    EXPECT_EQ(done, progress_calls);
  };
  auto report = pack_images(o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(progress_calls, 8);
  EXPECT_EQ(report->inputs, 8);
  EXPECT_THAT(report->label_names, ::testing::ElementsAre("gray", "color"));

  // Skips: the unreadable image (relative path, resolved against the index's directory) and the
  // empty caption, each with its line and reason.
  ASSERT_EQ(report->skipped.size(), 2u);
  EXPECT_EQ(report->skipped[0].line, 7);
  EXPECT_THAT(report->skipped[0].reason, HasSubstr((dir / "no_such_image.png").string()));
  EXPECT_EQ(report->skipped[1].line, 8);
  EXPECT_EQ(report->skipped[1].reason, "empty caption");

  // Counts add up, shards hold at most samples_per_shard, the split is split_of's.
  ASSERT_EQ(report->splits.size(), 2u);
  int64_t expected_val = 0;
  for (const Input& i : inputs) expected_val += std::string(split_of(i.path, 0.4)) == "val";
  EXPECT_EQ(report->splits[0].num_samples + report->splits[1].num_samples, 6);
  EXPECT_EQ(report->splits[1].num_samples, expected_val);
  for (const SplitReport& s : report->splits)
    EXPECT_EQ(int64_t(s.shards.size()), (s.num_samples + 1) / 2) << s.split;

  const auto packed = read_back(*report, dir / "out");
  ASSERT_EQ(packed.size(), inputs.size());
  for (const Input& i : inputs) {
    SCOPED_TRACE(i.path);
    auto it = packed.find(i.caption);
    ASSERT_NE(it, packed.end());
    auto decoded = read_image_file(i.path);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(it->second.image, resize_and_center_crop(*decoded, kResolution).pixels);
    EXPECT_EQ(it->second.label, i.label_name == "gray" ? 0 : 1);
    EXPECT_EQ(it->second.split, split_of(i.path, 0.4));
  }
}

TEST(Pack, RepackingGivesByteEqualShardsAndTheFractionEndsGoToOneSplit) {
  const fs::path dir = temp_dir("determinism");
  const std::string index = write_index(dir, fixture_inputs());
  auto a = pack_images(options_for(index, dir / "a"));
  auto b = pack_images(options_for(index, dir / "b"));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  for (int s = 0; s < 2; ++s) {
    ASSERT_EQ(a->splits[s].shards, b->splits[s].shards);
    for (const std::string& shard : a->splits[s].shards)
      EXPECT_EQ(*file_content_hash((dir / "a" / shard).string()),
                *file_content_hash((dir / "b" / shard).string()))
          << shard;
  }
  for (double fraction : {0.0, 1.0}) {
    PackOptions o = options_for(index, dir / absl::StrCat("f", fraction));
    o.val_fraction = fraction;
    auto r = pack_images(o);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->splits[fraction == 0 ? 0 : 1].num_samples, 6);
    EXPECT_EQ(r->splits[fraction == 0 ? 1 : 0].num_samples, 0);
    EXPECT_EQ(r->splits[fraction == 0 ? 1 : 0].manifest, "");
  }
}

// Keys that differ only at their end (img2dataset's "TAR:KEY" names) spread over both splits in
// the asked proportion: the split hash mixes its bits (FNV-1a's top bits alone put 20 % of 1,000
// such keys into a 10 % val split, and each tar's 20 keys into one split).
TEST(Pack, SplitIsUniformForKeysThatDifferAtTheEnd) {
  int val = 0, tars_split_both_ways = 0;
  for (int tar = 0; tar < 50; ++tar) {
    int tar_val = 0;
    for (int k = 0; k < 20; ++k) {
      const std::string key = absl::StrFormat("shards/part%d.tar:s%d_%03d", tar, tar, k);
      tar_val += std::string(split_of(key, 0.1)) == "val";
    }
    val += tar_val;
    tars_split_both_ways += tar_val > 0 && tar_val < 20;
  }
  // 1,000 keys at 10 %: a binomial with std ~9.5, so [60, 140] is over 4 std wide.
  EXPECT_GE(val, 60);
  EXPECT_LE(val, 140);
  EXPECT_GE(tars_split_both_ways, 25);  // P(a tar all train) = 0.9^20 = 0.12
}

// The tokenizer runs inside a process that also links the system protobuf (for the manifest):
// this test is the one that failed before sentencepiece was isolated in its own dlopen'ed
// library (data_pipeline/sentencepiece_shim.h).
TEST(Pack, TokensAreEncodePaddedWithLengthThroughEndOfText) {
  const fs::path dir = temp_dir("tokens");
  const auto inputs = fixture_inputs();
  {
    std::ofstream corpus(dir / "captions.txt");
    for (int rep = 0; rep < 20; ++rep)
      for (const Input& i : inputs) corpus << i.caption << " of clip art\n";
  }
  TokenizerTrainOptions topt;
  topt.vocab_size = 60;
  ASSERT_TRUE(train_tokenizer((dir / "captions.txt").string(), (dir / "tok").string(), topt).ok());
  auto tok = Tokenizer::load((dir / "tok.model").string());
  ASSERT_TRUE(tok.ok()) << tok.status();

  PackOptions o = options_for(write_index(dir, inputs), dir / "out");
  o.tokenizer_model = (dir / "tok.model").string();
  o.context = 6;  // short enough that some captions are truncated
  auto report = pack_images(o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(report->tokenizer, ::testing::StartsWith("sentencepiece:fnv1a64:"));
  // The manifests name the model, copied beside them, and its identity.
  for (const SplitReport& split : report->splits) {
    if (split.manifest.empty()) continue;
    auto m = load_manifest(split.manifest);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->tokenizer(), report->tokenizer);
    EXPECT_EQ(m->tokenizer_model(), "tokenizer.model");
    EXPECT_EQ(*file_content_hash((dir / "out" / "tokenizer.model").string()),
              *file_content_hash((dir / "tok.model").string()));
  }
  const auto packed = read_back(*report, dir / "out");
  ASSERT_EQ(packed.size(), inputs.size());
  for (const auto& [caption, p] : packed) {
    SCOPED_TRACE(caption);
    const std::vector<int32_t> want = tok->encode_padded(caption, 6);
    EXPECT_EQ(p.tokens, want);
    const auto eot = std::find(want.begin(), want.end(), tok->eot_id());
    ASSERT_NE(eot, want.end());
    EXPECT_EQ(p.token_length, eot - want.begin() + 1);
  }
}

TEST(Pack, EmptyInputIsAnErrorNamingIt) {
  const fs::path dir = temp_dir("empty");
  const std::string index = write_index(dir, {}, "\n  \n");
  auto report = pack_images(options_for(index, dir / "out"));
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(std::string(report.status().message()),
              AllOf(HasSubstr(index), HasSubstr("no inputs (empty input)")));
  EXPECT_FALSE(fs::exists(dir / "out" / "train.pbtxt"));
}

TEST(LoadManifest, NamesTheManifestAndTheShardThatChangedOrWentMissing) {
  const fs::path dir = temp_dir("manifest");
  PackOptions o = options_for(write_index(dir, fixture_inputs()), dir / "out");
  o.val_fraction = 0;  // all six inputs in train: three shards
  auto report = pack_images(o);
  ASSERT_TRUE(report.ok()) << report.status();
  const SplitReport& train = report->splits[0];
  ASSERT_GE(train.shards.size(), 2u);
  ASSERT_TRUE(load_manifest(train.manifest).ok());

  const std::string grown = (dir / "out" / train.shards[0]).string();
  { std::ofstream(grown, std::ios::app) << 'x'; }
  auto r = load_manifest(train.manifest);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              AllOf(HasSubstr(train.manifest), HasSubstr(grown), HasSubstr("size")));

  fs::remove(grown);
  r = load_manifest(train.manifest);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              AllOf(HasSubstr(train.manifest), HasSubstr(grown), HasSubstr("missing")));
}

TEST(LoadManifest, RejectsCountsThatDoNotAddUpAndUnknownFormatVersions) {
  const fs::path dir = temp_dir("manifest_counts");
  auto report = pack_images(options_for(write_index(dir, fixture_inputs()), dir / "out"));
  ASSERT_TRUE(report.ok()) << report.status();
  const std::string path = report->splits[0].manifest;
  std::string text;
  {
    std::ifstream in(path);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto rewrite = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    const size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    t.replace(at, from.size(), to);
    std::ofstream(path, std::ios::trunc) << t;
  };
  rewrite("num_samples: " + std::to_string(report->splits[0].num_samples) + "\n",
          "num_samples: 99\n");
  auto r = load_manifest(path);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), AllOf(HasSubstr(path), HasSubstr("99")));

  rewrite("format_version: 1", "format_version: 7");
  r = load_manifest(path);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), AllOf(HasSubstr(path), HasSubstr("format_version 7")));

  rewrite("resolution:", "resolutio:");
  r = load_manifest(path);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), AllOf(HasSubstr(path), HasSubstr("resolutio")));
}

}  // namespace
}  // namespace tessera::data
