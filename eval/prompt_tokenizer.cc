#include "eval/prompt_tokenizer.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "data_pipeline/pack.h"

namespace tessera::eval {
namespace fs = std::filesystem;
namespace {

// Runs `command` (stdin from `in` when not empty) and returns its stdout; errors carry stderr.
absl::StatusOr<std::string> run(const std::string& command, const std::string& in,
                                const std::string& what) {
  const fs::path dir =
      fs::temp_directory_path() / absl::StrCat("tessera_spm_", getpid(), "_", std::rand());
  fs::create_directories(dir);
  const std::string in_path = (dir / "in.txt").string(), out_path = (dir / "out.txt").string(),
                    err_path = (dir / "err.txt").string();
  {
    std::ofstream f(in_path);
    f << in;
  }
  const std::string cmd =
      absl::StrCat(command, " < '", in_path, "' > '", out_path, "' 2> '", err_path, "'");
  const int rc = std::system(cmd.c_str());
  std::stringstream out, err;
  out << std::ifstream(out_path).rdbuf();
  err << std::ifstream(err_path).rdbuf();
  fs::remove_all(dir);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat(what, " failed (exit ", rc, "): ", err.str(),
                                            " (is Debian's `sentencepiece` package installed?)"));
  }
  return out.str();
}

std::string quoted(const std::string& s) {
  return absl::StrCat("'", s, "'");
}

}  // namespace

absl::StatusOr<std::string> find_tokenizer(const std::string& manifest_path,
                                           const data::Manifest& m,
                                           const std::string& explicit_path) {
  const std::string& identity = m.tokenizer();
  if (identity.empty() || m.token_length() == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(manifest_path,
                     ": the split was packed without a tokenizer (no caption tokens); "
                     "CLIP evaluation needs captions packed with --tokenizer"));
  }
  auto matches = [&](const std::string& path) -> bool {
    auto h = data::file_content_hash(path);
    return h.ok() && "sentencepiece:" + *h == identity;
  };
  if (!explicit_path.empty()) {
    if (!fs::exists(explicit_path)) {
      return absl::NotFoundError(absl::StrCat("--tokenizer ", explicit_path, ": no such file"));
    }
    if (!matches(explicit_path)) {
      return absl::FailedPreconditionError(absl::StrCat("--tokenizer ", explicit_path,
                                                        " is not the tokenizer ", manifest_path,
                                                        " was packed with (", identity, ")"));
    }
    return explicit_path;
  }
  const fs::path dir = fs::path(manifest_path).parent_path();
  std::vector<fs::path> places = {dir.empty() ? fs::path(".") : dir};
  if (dir.has_parent_path()) places.push_back(dir.parent_path());
  for (const fs::path& place : places) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(place, ec)) {
      if (entry.path().extension() == ".model" && matches(entry.path().string()))
        return entry.path().string();
    }
  }
  return absl::NotFoundError(
      absl::StrCat(manifest_path, ": its captions were tokenised by ", identity,
                   " and no .model file with that hash is in ", places.front().string(),
                   places.size() > 1 ? absl::StrCat(" or ", places.back().string()) : std::string(),
                   "; pass --tokenizer MODEL"));
}

absl::StatusOr<std::vector<std::vector<int32_t>>> spm_encode(
    const std::string& model_path, const std::vector<std::string>& texts) {
  std::string in;
  for (const std::string& t : texts) {
    if (t.find('\n') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("prompt '", t, "' contains a newline"));
    }
    absl::StrAppend(&in, t, "\n");
  }
  auto out = run(absl::StrCat("spm_encode --model=", quoted(model_path), " --output_format=id"), in,
                 absl::StrCat("spm_encode --model=", model_path));
  if (!out.ok()) return out.status();
  std::vector<std::vector<int32_t>> ids;
  const std::vector<std::string> lines = absl::StrSplit(*out, '\n');
  for (const std::string& line : lines) {
    if (ids.size() == texts.size()) break;
    std::vector<int32_t> row;
    const std::vector<std::string> toks = absl::StrSplit(line, ' ', absl::SkipEmpty());
    for (const std::string& tok : toks)
      row.push_back(int32_t(std::strtol(tok.c_str(), nullptr, 10)));
    ids.push_back(std::move(row));
  }
  if (ids.size() != texts.size()) {
    return absl::InternalError(absl::StrCat("spm_encode --model=", model_path, " returned ",
                                            ids.size(), " lines for ", texts.size(), " texts"));
  }
  return ids;
}

absl::StatusOr<std::string> spm_decode(const std::string& model_path,
                                       const std::vector<int32_t>& ids) {
  std::string in;
  for (int32_t id : ids) absl::StrAppend(&in, in.empty() ? "" : " ", id);
  auto out = run(absl::StrCat("spm_decode --model=", quoted(model_path), " --input_format=id"),
                 in + "\n", absl::StrCat("spm_decode --model=", model_path));
  if (!out.ok()) return out.status();
  std::string text = *out;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

absl::StatusOr<ZeroShotPrompts> tokenize_prompts(const std::string& model_path,
                                                 const std::vector<std::string>& class_names,
                                                 const std::vector<std::string>& templates,
                                                 int context) {
  // Special ids from the vocabulary, in id order (line i = piece i).
  auto vocab = run(absl::StrCat("spm_export_vocab --model=", quoted(model_path)), "",
                   absl::StrCat("spm_export_vocab --model=", model_path));
  if (!vocab.ok()) return vocab.status();
  int32_t eot = -1, pad = -1, id = 0;
  const std::vector<std::string> vlines = absl::StrSplit(*vocab, '\n', absl::SkipEmpty());
  for (const std::string& line : vlines) {
    const std::string piece = line.substr(0, line.find('\t'));
    if (piece == "</s>") eot = id;
    if (piece == "<pad>") pad = id;
    ++id;
  }
  if (eot < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(model_path, ": the tokenizer has no end-of-text piece </s>"));
  }
  if (pad < 0) pad = eot;
  auto ids = spm_encode(model_path, prompt_texts(class_names, templates));
  if (!ids.ok()) return ids.status();
  ZeroShotPrompts p;
  p.class_names = class_names;
  p.templates = int64_t(templates.size());
  p.context = context;
  for (std::vector<int32_t> row : *ids) {
    if (int(row.size()) > context - 1) row.resize(context - 1);
    p.eot.push_back(int32_t(row.size()));
    row.push_back(eot);
    row.resize(context, pad);
    p.tokens.insert(p.tokens.end(), row.begin(), row.end());
  }
  return p;
}

}  // namespace tessera::eval
