// Text shards and `pack --text`: the stream round-trips exactly (any sub-range), corrupt and
// wrong files are refused naming file and range, and pack_text's streams equal the tokenizer's
// encoding of the paragraphs of each split with end-of-text after each document.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "data_pipeline/pack_text.h"
#include "data_pipeline/shard_writer.h"
#include "data_pipeline/text_shard.h"
#include "data_pipeline/tokenizer.h"

namespace tessera::data {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string temp(const std::string& name) {
  static const fs::path dir = [] {
    auto d = fs::path(::testing::TempDir()) / absl::StrCat("tessera_text_test_", getpid());
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  return (dir / name).string();
}

std::vector<int32_t> stream(int64_t n) {
  std::vector<int32_t> s(n);
  for (int64_t i = 0; i < n; ++i) s[i] = int32_t((i * 7919) % 5003);
  return s;
}

TEST(TextShard, RoundTripsAnyRange) {
  const auto tokens = stream(150000);  // 3 chunks of 65,536
  const std::string path = temp("stream.h5");
  ASSERT_TRUE(write_text_shard(path, tokens, "sentencepiece:test", 2).ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto r = TextShardReader::open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->num_tokens(), 150000);
  EXPECT_EQ((*r)->eot_id(), 2);
  for (auto [first, count] :
       {std::pair<int64_t, int64_t>{0, 150000}, {65530, 20}, {149999, 1}, {100, 0}}) {
    auto got = (*r)->read(first, count);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, std::vector<int32_t>(tokens.begin() + first, tokens.begin() + first + count));
  }
  auto past = (*r)->read(149990, 11);
  ASSERT_FALSE(past.ok());
  EXPECT_THAT(std::string(past.status().message()), HasSubstr("tokens [149990, 150001)"));
}

TEST(TextShard, BadFilesAreRefusedNamingFileAndRange) {
  EXPECT_THAT(std::string(TextShardReader::open(temp("none.h5")).status().message()),
              AllOf(HasSubstr(temp("none.h5")), HasSubstr("no such file")));
  // An image shard is not a text shard.
  const std::string image = temp("image.h5");
  {
    ShardWriterOptions o;
    o.resolution = 4;
    auto w = ShardWriter::create(image, o);
    ASSERT_TRUE(w.ok());
    std::vector<uint8_t> px(48, 1);
    ASSERT_TRUE((*w)->append({px, "c", {}, 0}).ok());
    ASSERT_TRUE((*w)->finish().ok());
  }
  EXPECT_THAT(std::string(TextShardReader::open(image).status().message()),
              AllOf(HasSubstr(image), HasSubstr("missing file attribute 'num_tokens'")));
  // A flipped byte inside the second chunk: a checksum error for reads touching it only.
  const std::string path = temp("flipped.h5");
  ASSERT_TRUE(write_text_shard(path, stream(140000), "", 2).ok());
  {
    hdf5::H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    hdf5::H5Handle dset(H5Dopen2(file.get(), kTextTokens, H5P_DEFAULT));
    hdf5::H5Handle space(H5Dget_space(dset.get()));
    hsize_t offset[1];
    unsigned mask = 0;
    haddr_t address = 0;
    hsize_t size = 0;
    ASSERT_GE(H5Dget_chunk_info(dset.get(), space.get(), 1, offset, &mask, &address, &size), 0);
    file.reset();
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(address + 1000);
    f.put(char(0x77));
  }
  auto r = TextShardReader::open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  auto bad = (*r)->read(65000, 1000);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(bad.status().message()),
              AllOf(HasSubstr(path), HasSubstr("tokens [65000, 66000)"), HasSubstr("checksum")));
  EXPECT_TRUE((*r)->read(0, 65536).ok());
  // Truncated file.
  const std::string cut = temp("cut.h5");
  fs::copy_file(temp("stream.h5"), cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, fs::file_size(cut) / 3);
  EXPECT_THAT(std::string(TextShardReader::open(cut).status().message()), HasSubstr(cut));
}

// Paragraph lines, documents separated by blank lines; the tokenizer is trained on them.
TEST(PackText, StreamsAreTheEncodedParagraphsOfEachSplitWithEndOfTextPerDocument) {
  const std::string text = temp("corpus.txt");
  std::vector<std::vector<std::string>> docs;
  {
    std::ofstream out(text);
    for (int d = 0; d < 6; ++d) {
      docs.emplace_back();
      for (int p = 0; p < 5; ++p) {
        docs.back().push_back(absl::StrCat("document ", d, " paragraph ", p,
                                           " says something about free software and licences"));
        out << docs.back().back() << "\n";
      }
      out << "\n";
    }
  }
  TokenizerTrainOptions t;
  t.vocab_size = 80;
  ASSERT_TRUE(train_tokenizer(text, temp("tok"), t).ok());
  auto tok = Tokenizer::load(temp("tok.model"));
  ASSERT_TRUE(tok.ok()) << tok.status();

  TextPackOptions o;
  o.text_path = text;
  o.out_dir = temp("packed");
  o.tokenizer_model = temp("tok.model");
  o.tokens_per_shard = 100;  // several shards per split
  o.val_fraction = 0.3;
  auto report = pack_text(o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->paragraphs, 30);
  EXPECT_EQ(report->documents, 6);
  std::map<std::string, std::vector<int32_t>> want;
  for (const auto& doc : docs) {
    std::set<std::string> used;
    for (const auto& p : doc) {
      const std::string split = split_of(p, 0.3);
      auto ids = tok->encode(p);
      want[split].insert(want[split].end(), ids.begin(), ids.end());
      used.insert(split);
    }
    for (const auto& s : used) want[s].push_back(tok->eot_id());
  }
  ASSERT_EQ(report->splits.size(), 2u);
  for (const SplitReport& s : report->splits) {
    SCOPED_TRACE(s.split);
    ASSERT_FALSE(want[s.split].empty());
    auto m = load_manifest(s.manifest, /*verify_hashes=*/true);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->kind(), "text");
    EXPECT_EQ(m->eot_id(), tok->eot_id());
    EXPECT_EQ(m->tokenizer_model(), "tokenizer.model");
    EXPECT_GT(m->shards_size(), 1);
    std::vector<int32_t> got;
    for (const auto& shard : m->shards()) {
      auto r = TextShardReader::open((fs::path(o.out_dir) / shard.path()).string());
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ((*r)->num_tokens(), shard.num_samples());
      auto all = (*r)->read(0, (*r)->num_tokens());
      got.insert(got.end(), all->begin(), all->end());
    }
    EXPECT_EQ(got, want[s.split]);
    EXPECT_EQ(m->num_samples(), int64_t(got.size()));
  }
}

TEST(PackText, EmptyAndMissingInputsAreErrorsNamingTheFile) {
  TextPackOptions o;
  o.out_dir = temp("empty_out");
  o.tokenizer_model = temp("tok.model");  // from the test above, or missing: either fails
  o.text_path = temp("empty.txt");
  std::ofstream(o.text_path) << "\n\n  \n";
  auto r = pack_text(o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(o.text_path));
  o.text_path = temp("missing.txt");
  r = pack_text(o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(o.text_path));
}

}  // namespace
}  // namespace tessera::data
