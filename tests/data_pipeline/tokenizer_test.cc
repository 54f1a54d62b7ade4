#include "data_pipeline/tokenizer.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <map>

namespace tessera::data {
namespace {

// Real English prose that every Debian system has (package base-files).
constexpr const char* kCorpus = "/usr/share/common-licenses/GPL-3";

// A per-process directory: several checkouts may run this test at once on one machine.
std::string prefix(const std::string& name) {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::path(::testing::TempDir()) /
             ("tessera_tokenizer_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return (dir / name).string();
}

// Trains once per model type for the whole suite (about a second each).
const Tokenizer& trained(const std::string& type) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(type);
  if (it == cache.end()) {
    TokenizerTrainOptions opt;
    opt.vocab_size = 500;
    opt.model_type = type;
    const std::string p = prefix("tok_" + type);
    const absl::Status s = train_tokenizer(kCorpus, p, opt);
    EXPECT_TRUE(s.ok()) << s;
    auto t = Tokenizer::load(p + ".model");
    EXPECT_TRUE(t.ok()) << t.status();
    it = cache.emplace(type, std::move(*t)).first;
  }
  return it->second;
}

class TokenizerTypes : public ::testing::TestWithParam<const char*> {};

TEST_P(TokenizerTypes, TrainsWithTheFixedSpecialIds) {
  const Tokenizer& t = trained(GetParam());
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.eot_id(), 2);
  EXPECT_GT(t.vocab_size(), 100);
  EXPECT_LE(t.vocab_size(), 500);
}

TEST_P(TokenizerTypes, EncodeDecodeRoundTrip) {
  const Tokenizer& t = trained(GetParam());
  const std::string text = "You may copy and distribute verbatim copies of this License.";
  const std::vector<int32_t> ids = t.encode(text);
  EXPECT_GT(ids.size(), 3u);
  EXPECT_LT(ids.size(), text.size());  // merged into pieces, not one id per character
  for (int32_t id : ids) {
    EXPECT_NE(id, t.eot_id());
    EXPECT_NE(id, t.pad_id());
  }
  EXPECT_EQ(t.decode(ids), text);
}

TEST_P(TokenizerTypes, PaddedEncodingEndsWithEndOfTextThenPad) {
  const Tokenizer& t = trained(GetParam());
  const std::string text = "the program";
  const std::vector<int32_t> ids = t.encode(text);
  const int context = int(ids.size()) + 4;
  const std::vector<int32_t> padded = t.encode_padded(text, context);
  ASSERT_EQ(padded.size(), size_t(context));
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(padded[i], ids[i]);
  EXPECT_EQ(padded[ids.size()], t.eot_id());
  for (int i = int(ids.size()) + 1; i < context; ++i) EXPECT_EQ(padded[i], t.pad_id());
  EXPECT_EQ(t.decode(padded), text);
}

TEST_P(TokenizerTypes, LongTextIsTruncatedKeepingEndOfText) {
  const Tokenizer& t = trained(GetParam());
  const std::string text =
      "This General Public License does not permit incorporating your program into proprietary "
      "programs.";
  const std::vector<int32_t> ids = t.encode(text);
  const int context = 6;
  ASSERT_GT(ids.size(), size_t(context));
  const std::vector<int32_t> padded = t.encode_padded(text, context);
  ASSERT_EQ(padded.size(), size_t(context));
  for (int i = 0; i < context - 1; ++i) EXPECT_EQ(padded[i], ids[i]);
  EXPECT_EQ(padded.back(), t.eot_id());
  // Decoding stops at end-of-text and yields a prefix of the text.
  const std::string head = t.decode(padded);
  EXPECT_FALSE(head.empty());
  EXPECT_EQ(text.rfind(head, 0), 0u) << head;
}

INSTANTIATE_TEST_SUITE_P(ModelTypes, TokenizerTypes, ::testing::Values("unigram", "bpe"));

TEST(Tokenizer, DecodeStopsAtEndOfTextAndSkipsPad) {
  const Tokenizer& t = trained("unigram");
  std::vector<int32_t> a = t.encode("free software");
  std::vector<int32_t> b = t.encode("nonsense after the end");
  std::vector<int32_t> ids = {t.pad_id()};
  ids.insert(ids.end(), a.begin(), a.end());
  ids.push_back(t.eot_id());
  ids.insert(ids.end(), b.begin(), b.end());
  EXPECT_EQ(t.decode(ids), "free software");
}

TEST(Tokenizer, ErrorsNameTheFile) {
  auto missing = Tokenizer::load("/nonexistent/tok.model");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/tok.model"), std::string::npos);

  const absl::Status no_text = train_tokenizer("/nonexistent/corpus.txt", prefix("x"));
  ASSERT_FALSE(no_text.ok());
  EXPECT_NE(no_text.message().find("/nonexistent/corpus.txt"), std::string::npos);

  TokenizerTrainOptions bad;
  bad.model_type = "wordpiece";
  EXPECT_FALSE(train_tokenizer(kCorpus, prefix("y"), bad).ok());
}

}  // namespace
}  // namespace tessera::data
