#pragma once
// SentencePiece tokenizer for captions (CLIP/SigLIP text towers) and GPT text. sentencepiece
// itself lives in libtessera_sentencepiece.so, loaded on first use (sentencepiece_shim.h says
// why). The library is looked up in this order: $TESSERA_SENTENCEPIECE_LIBRARY, next to the
// running executable (build/tessera), then the build tree's path baked in by CMake.
//
// Special ids of a model trained here: pad = 0, unk = 1, end-of-text (SentencePiece "eos") = 2;
// no begin-of-sequence piece (a GPT sample is a window of one stream in which end-of-text
// separates documents, and CLIP pools at end-of-text).

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct TesseraSpmApi;

namespace tessera::data {

// The loaded shim's function table, loading it on the first call; errors list the paths tried
// and dlerror's message.
absl::StatusOr<const TesseraSpmApi*> sentencepiece_api();

struct TokenizerTrainOptions {
  int vocab_size = 8000;
  std::string model_type = "unigram";  // "unigram" or "bpe"
  // Sentences sampled from the input (0: all). Keeps training time bounded on big corpora.
  int64_t input_sentence_size = 1000000;
  int num_threads = 1;
  // When false, vocab_size is an upper bound: a small corpus yields a smaller vocabulary
  // instead of a training error.
  bool hard_vocab_limit = false;
};

// Trains on `text_path` (one sentence or paragraph per line) and writes MODEL_PREFIX.model and
// MODEL_PREFIX.vocab. Errors name the input file.
absl::Status train_tokenizer(const std::string& text_path, const std::string& model_prefix,
                             const TokenizerTrainOptions& options = {});

class Tokenizer {
 public:
  // Loads a .model file. A model without an eos piece is refused (end-of-text is required);
  // a model without a pad piece pads with end-of-text.
  static absl::StatusOr<Tokenizer> load(const std::string& model_path);

  int vocab_size() const;
  int32_t eot_id() const { return eot_id_; }
  int32_t pad_id() const { return pad_id_; }

  // Token ids of `text`, without end-of-text.
  std::vector<int32_t> encode(std::string_view text) const;

  // Exactly `context` ids: the text's ids, then end-of-text, then pad. Text longer than
  // context - 1 tokens is truncated so that end-of-text is always present (at the last
  // position), because CLIP-style pooling reads the feature at end-of-text.
  std::vector<int32_t> encode_padded(std::string_view text, int context) const;

  // Inverse of encode: stops at the first end-of-text and skips pad ids.
  std::string decode(std::span<const int32_t> ids) const;

 private:
  Tokenizer() = default;
  std::shared_ptr<void> sp_;  // the shim's processor handle; read-only after load
  const TesseraSpmApi* api_ = nullptr;
  int32_t eot_id_ = -1;
  int32_t pad_id_ = -1;
};

}  // namespace tessera::data
