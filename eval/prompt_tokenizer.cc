#include "eval/prompt_tokenizer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/tokenizer.h"

namespace tessera::eval {
namespace fs = std::filesystem;

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
  if (!m.tokenizer_model().empty()) {
    const std::string named = (places.front() / m.tokenizer_model()).string();
    if (matches(named)) return named;
  }
  for (const fs::path& place : places) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(place, ec)) {
      if (entry.path().extension() == ".model" && matches(entry.path().string()))
        return entry.path().string();
    }
  }
  return absl::NotFoundError(absl::StrCat(
      manifest_path, ": its captions were tokenised by ", identity,
      " and no .model file with that hash is in ", places.front().string(),
      places.size() > 1 ? absl::StrCat(" or ", places.back().string()) : std::string(),
      m.tokenizer_model().empty() ? std::string()
                                  : absl::StrCat(" (tokenizer_model: ", m.tokenizer_model(), ")"),
      "; pass --tokenizer MODEL"));
}

absl::StatusOr<ZeroShotPrompts> tokenize_prompts(const std::string& model_path,
                                                 const std::vector<std::string>& class_names,
                                                 const std::vector<std::string>& templates,
                                                 int context) {
  auto tok = data::Tokenizer::load(model_path);
  if (!tok.ok()) return tok.status();
  ZeroShotPrompts p;
  p.class_names = class_names;
  p.templates = int64_t(templates.size());
  p.context = context;
  for (const std::string& text : prompt_texts(class_names, templates)) {
    const std::vector<int32_t> row = tok->encode_padded(text, context);
    // The end-of-text position: the first end-of-text (pad may equal it, after it).
    int32_t eot = 0;
    while (eot < context - 1 && row[eot] != tok->eot_id()) ++eot;
    p.eot.push_back(eot);
    p.tokens.insert(p.tokens.end(), row.begin(), row.end());
  }
  return p;
}

}  // namespace tessera::eval
