#include "data_pipeline/tokenizer.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

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

// The same .model through Debian's python3-sentencepiece (an independent build of the library,
// in another process): every line of a text the model was not trained on encodes to the same ids
// and decodes to the same string (characters unseen in training decode to the unknown piece, so
// the reference for decode is Python's decode, not the input).
TEST_P(TokenizerTypes, EncodesLikePythonSentencepiece) {
  const Tokenizer& t = trained(GetParam());
  const char* python = std::getenv("TESSERA_PYTHON");
  ASSERT_NE(python, nullptr) << "TESSERA_PYTHON is unset (ctest sets it)";
  const std::string model = prefix(std::string("tok_") + GetParam()) + ".model";
  const std::string out = prefix(std::string("python_ids_") + GetParam() + ".txt");
  constexpr const char* kText = "/usr/share/common-licenses/Apache-2.0";
  const std::string script =
      "import sentencepiece as s, sys\n"
      "sp = s.SentencePieceProcessor(model_file=sys.argv[1])\n"
      "with open(sys.argv[3], 'w') as o:\n"
      "  for line in open(sys.argv[2], encoding='utf-8'):\n"
      "    line = line.rstrip('\\n')\n"
      "    if line.strip():\n"
      "      ids = sp.encode(line)\n"
      "      o.write(' '.join(map(str, ids)) + '\\n' + sp.decode(ids) + '\\n')\n";
  const std::string script_path = prefix("encode.py");
  std::ofstream(script_path) << script;
  const std::string cmd =
      std::string(python) + " " + script_path + " " + model + " " + kText + " " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << " failed (is python3-sentencepiece installed?)";

  std::ifstream text(kText), ids_file(out);
  std::string line, ids_line, decoded;
  int compared = 0;
  while (std::getline(text, line)) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    ASSERT_TRUE(std::getline(ids_file, ids_line)) << "python wrote fewer lines";
    std::vector<int32_t> want;
    std::istringstream in(ids_line);
    for (int32_t id; in >> id;) want.push_back(id);
    ASSERT_TRUE(std::getline(ids_file, decoded));
    ASSERT_EQ(t.encode(line), want) << line;
    EXPECT_EQ(t.decode(want), decoded);
    ++compared;
  }
  EXPECT_GT(compared, 100);
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
