#include "data_pipeline/tokenizer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/error.h"

namespace tessera::data {

absl::Status train_tokenizer(const std::string& text_path, const std::string& model_prefix,
                             const TokenizerTrainOptions& options) {
  if (options.model_type != "unigram" && options.model_type != "bpe") {
    return absl::InvalidArgumentError(absl::StrCat(
        "train_tokenizer: model_type must be unigram or bpe, got '", options.model_type, "'"));
  }
  if (!std::filesystem::is_regular_file(text_path)) {
    return absl::NotFoundError(absl::StrCat(text_path, ": tokenizer training text not found"));
  }
  // The command-line form keeps us independent of the TrainerSpec proto's generated header.
  const std::string args = absl::StrCat(
      "--input=", text_path, " --model_prefix=", model_prefix, " --vocab_size=", options.vocab_size,
      " --model_type=", options.model_type, " --input_sentence_size=", options.input_sentence_size,
      " --shuffle_input_sentence=true --num_threads=", options.num_threads,
      " --hard_vocab_limit=", options.hard_vocab_limit ? "true" : "false",
      " --character_coverage=1.0 --pad_id=0 --unk_id=1 --eos_id=2 --bos_id=-1", " --minloglevel=1");
  const std::string error = spm::train(args);
  if (!error.empty()) {
    return absl::InternalError(absl::StrCat(text_path, ": sentencepiece training failed: ", error));
  }
  return absl::OkStatus();
}

absl::StatusOr<Tokenizer> Tokenizer::load(const std::string& model_path) {
  Tokenizer t;
  std::string error;
  t.sp_ = spm::load(model_path, &error);
  if (!t.sp_) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_path, ": cannot load sentencepiece model: ", error));
  }
  t.eot_id_ = spm::eos_id(*t.sp_);
  if (t.eot_id_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_path, ": model has no eos piece, needed as end-of-text"));
  }
  t.pad_id_ = spm::pad_id(*t.sp_) >= 0 ? spm::pad_id(*t.sp_) : t.eot_id_;
  return t;
}

int Tokenizer::vocab_size() const {
  return spm::piece_size(*sp_);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  const std::vector<int> ids = spm::encode(*sp_, text);
  return {ids.begin(), ids.end()};
}

std::vector<int32_t> Tokenizer::encode_padded(std::string_view text, int context) const {
  TESSERA_CHECK(context >= 1, "Tokenizer::encode_padded: context must be >= 1, got ", context);
  std::vector<int32_t> ids = encode(text);
  if (ids.size() > size_t(context - 1)) ids.resize(context - 1);
  ids.push_back(eot_id_);
  ids.resize(context, pad_id_);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::vector<int> kept;
  for (int32_t id : ids) {
    if (id == eot_id_) break;
    if (id == pad_id_) continue;
    TESSERA_CHECK(id >= 0 && id < vocab_size(), "Tokenizer::decode: id ", id,
                  " outside the vocabulary [0, ", vocab_size(), ")");
    kept.push_back(id);
  }
  return spm::decode(*sp_, kept);
}

}  // namespace tessera::data
