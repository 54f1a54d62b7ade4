#include "data_pipeline/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "data_pipeline/sentencepiece_shim.h"

namespace tessera::data {
namespace {

// Takes ownership of a string the shim malloc'd.
std::string take(const TesseraSpmApi* api, char* s) {
  if (s == nullptr) return {};
  std::string out(s);
  api->free_string(s);
  return out;
}

absl::StatusOr<const TesseraSpmApi*> load_api() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("TESSERA_SENTENCEPIECE_LIBRARY"); env && *env) {
    candidates.push_back(env);
  }
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back((exe.parent_path() / kTesseraSpmLibrary).string());
#ifdef TESSERA_SPM_LIBRARY_PATH
  candidates.push_back(TESSERA_SPM_LIBRARY_PATH);
#endif
  std::string tried;
  for (const std::string& path : candidates) {
    if (!std::filesystem::exists(path)) {
      absl::StrAppend(&tried, "\n  ", path, ": not found");
      continue;
    }
    // A new link-map namespace: sentencepiece's references to protobuf bind to its bundled
    // copy, never to the libprotobuf already in this process (sentencepiece_shim.h).
    void* handle = ::dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      absl::StrAppend(&tried, "\n  ", path, ": ", ::dlerror());
      continue;
    }
    using Entry = const TesseraSpmApi* (*)();
    auto entry = reinterpret_cast<Entry>(::dlsym(handle, "tessera_spm_api"));
    if (entry == nullptr) {
      absl::StrAppend(&tried, "\n  ", path, ": no symbol tessera_spm_api");
      continue;
    }
    const TesseraSpmApi* api = entry();
    if (api->abi_version != kTesseraSpmAbiVersion) {
      absl::StrAppend(&tried, "\n  ", path, ": interface version ", api->abi_version,
                      ", this build needs ", kTesseraSpmAbiVersion);
      continue;
    }
    return api;  // the handle stays open for the life of the process
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot load the SentencePiece library ", kTesseraSpmLibrary,
      " (build target tessera_sentencepiece; set TESSERA_SENTENCEPIECE_LIBRARY to its path):",
      tried));
}

}  // namespace

absl::StatusOr<const TesseraSpmApi*> sentencepiece_api() {
  static std::once_flag once;
  static absl::StatusOr<const TesseraSpmApi*> api;
  std::call_once(once, [] { api = load_api(); });
  return api;
}

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
  auto api = sentencepiece_api();
  if (!api.ok()) return api.status();
  const std::string error = take(*api, (*api)->train(args.c_str()));
  if (!error.empty()) {
    return absl::InternalError(absl::StrCat(text_path, ": sentencepiece training failed: ", error));
  }
  return absl::OkStatus();
}

absl::StatusOr<Tokenizer> Tokenizer::load(const std::string& model_path) {
  auto api = sentencepiece_api();
  if (!api.ok()) return api.status();
  Tokenizer t;
  t.api_ = *api;
  char* error = nullptr;
  void* processor = t.api_->load(model_path.c_str(), &error);
  if (processor == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_path, ": cannot load sentencepiece model: ", take(t.api_, error)));
  }
  t.sp_ = std::shared_ptr<void>(processor, t.api_->free_processor);
  t.eot_id_ = t.api_->eos_id(t.sp_.get());
  if (t.eot_id_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_path, ": model has no eos piece, needed as end-of-text"));
  }
  const int pad = t.api_->pad_id(t.sp_.get());
  t.pad_id_ = pad >= 0 ? pad : t.eot_id_;
  return t;
}

int Tokenizer::vocab_size() const {
  return api_->piece_size(sp_.get());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids(text.size() + 8);
  int n = api_->encode(sp_.get(), text.data(), text.size(), ids.data(), int(ids.size()));
  if (n > int(ids.size())) {
    ids.resize(n);
    n = api_->encode(sp_.get(), text.data(), text.size(), ids.data(), n);
  }
  ids.resize(n);
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
  return take(api_, api_->decode(sp_.get(), kept.data(), int(kept.size())));
}

}  // namespace tessera::data
