#include "data_pipeline/pack_text.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data_pipeline/text_shard.h"
#include "data_pipeline/tokenizer.h"

namespace tessera::data {
namespace {

namespace fs = std::filesystem;

// One split's token stream, cut into shards of options.tokens_per_shard.
class TextSplit {
 public:
  TextSplit(std::string split, const TextPackOptions& o, std::string tokenizer, int32_t eot)
      : o_(o), tokenizer_(std::move(tokenizer)), eot_(eot) {
    report_.split = std::move(split);
  }

  absl::Status append(const std::vector<int32_t>& tokens) {
    pending_.insert(pending_.end(), tokens.begin(), tokens.end());
    while (int64_t(pending_.size()) >= o_.tokens_per_shard) {
      if (auto s = flush(o_.tokens_per_shard); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  void end_document() {
    if (!pending_.empty() || report_.num_samples > 0) pending_.push_back(eot_);
  }

  absl::Status finish() {
    if (!pending_.empty())
      if (auto s = flush(int64_t(pending_.size())); !s.ok()) return s;
    if (report_.num_samples == 0) return absl::OkStatus();
    Manifest m;
    m.set_format_version(1);
    m.set_kind("text");
    m.set_tokenizer(tokenizer_);
    m.set_tokenizer_model(kTokenizerModelFile);
    m.set_eot_id(eot_);
    m.set_split(report_.split);
    m.set_num_samples(report_.num_samples);
    for (const ShardInfo& s : shards_) *m.add_shards() = s;
    report_.manifest = (fs::path(o_.out_dir) / (report_.split + ".pbtxt")).string();
    return write_manifest(m, report_.manifest);
  }
  const SplitReport& report() const { return report_; }

 private:
  absl::Status flush(int64_t n) {
    const std::string name = absl::StrFormat("%s-%05d.h5", report_.split, report_.shards.size());
    const std::string path = (fs::path(o_.out_dir) / name).string();
    if (auto s = write_text_shard(path, {pending_.data(), size_t(n)}, tokenizer_, eot_); !s.ok())
      return s;
    pending_.erase(pending_.begin(), pending_.begin() + n);
    ShardInfo info;
    info.set_path(name);
    info.set_num_samples(n);
    info.set_bytes(int64_t(fs::file_size(path)));
    auto hash = file_content_hash(path);
    if (!hash.ok()) return hash.status();
    info.set_content_hash(*hash);
    shards_.push_back(info);
    report_.shards.push_back(name);
    report_.num_samples += n;
    return absl::OkStatus();
  }

  const TextPackOptions& o_;
  std::string tokenizer_;
  int32_t eot_;
  SplitReport report_;
  std::vector<ShardInfo> shards_;
  std::vector<int32_t> pending_;
};

}  // namespace

absl::StatusOr<TextPackReport> pack_text(const TextPackOptions& o) {
  auto bad = [](const std::string& m) { return absl::InvalidArgumentError("pack --text: " + m); };
  if (o.text_path.empty()) return bad("no text file given");
  if (o.out_dir.empty()) return bad("no output directory given");
  if (o.tokenizer_model.empty()) return bad("a tokenizer model is required (--tokenizer)");
  if (o.tokens_per_shard < 2) return bad(absl::StrCat("tokens per shard ", o.tokens_per_shard));
  if (!(o.val_fraction >= 0 && o.val_fraction <= 1))
    return bad(absl::StrCat("val fraction ", o.val_fraction, " is outside [0, 1]"));
  std::ifstream in(o.text_path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("pack --text: ", o.text_path, ": cannot open"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  auto blank = [](const std::string& l) {
    return l.find_first_not_of(" \t\r") == std::string::npos;
  };
  if (std::all_of(lines.begin(), lines.end(), blank))
    return bad(absl::StrCat(o.text_path, ": no text (empty input)"));
  auto tok = Tokenizer::load(o.tokenizer_model);
  if (!tok.ok()) return tok.status();
  auto hash = file_content_hash(o.tokenizer_model);
  if (!hash.ok()) return hash.status();

  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  const fs::path copy = fs::path(o.out_dir) / kTokenizerModelFile;
  if (!ec && !(fs::exists(copy) && fs::equivalent(copy, o.tokenizer_model)))
    fs::copy_file(o.tokenizer_model, copy, fs::copy_options::overwrite_existing, ec);
  if (ec)
    return absl::PermissionDeniedError(
        absl::StrCat("pack --text: ", o.out_dir, ": ", ec.message()));

  TextPackReport report;
  report.tokenizer = "sentencepiece:" + *hash;
  TextSplit train("train", o, report.tokenizer, tok->eot_id());
  TextSplit val("val", o, report.tokenizer, tok->eot_id());
  bool in_document[2] = {false, false};
  auto end_document = [&] {
    if (in_document[0]) train.end_document();
    if (in_document[1]) val.end_document();
    if (in_document[0] || in_document[1]) ++report.documents;
    in_document[0] = in_document[1] = false;
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (blank(line)) {
      end_document();
    } else {
      const bool is_val = std::string_view(split_of(line, o.val_fraction)) == "val";
      if (auto s = (is_val ? val : train).append(tok->encode(line)); !s.ok()) return s;
      in_document[is_val] = true;
      ++report.paragraphs;
    }
    if (o.progress) o.progress(int64_t(i + 1), int64_t(lines.size()));
  }
  end_document();
  for (TextSplit* s : {&train, &val}) {
    if (auto st = s->finish(); !st.ok()) return st;
    report.splits.push_back(s->report());
  }
  return report;
}

}  // namespace tessera::data
