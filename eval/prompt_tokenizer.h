#pragma once
// Tokenises zero-shot prompts for a CLIP split with the SentencePiece model its captions were
// packed with. The text runs through SentencePiece's own command-line tools (spm_encode,
// spm_export_vocab; Debian package `sentencepiece`) in a child process, because the library
// cannot run inside the tessera binary (tools/CMakeLists.txt: Debian's libsentencepiece bundles
// protobuf 3.14 while tessera loads protobuf 3.21). Same library, same model: the same ids the
// packer stored. Rows are laid out as data::Tokenizer::encode_padded does: ids truncated to
// context - 1, end-of-text, then pad (end-of-text when the model has no pad piece).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "eval/clip_eval.h"
#include "proto/data.pb.h"

namespace tessera::eval {

// The .model for a split: `explicit_path` when given (its content hash must equal the
// manifest's tokenizer identity "sentencepiece:<hash>"), else the *.model file next to the
// manifest or in its parent directory with that hash. Errors name the manifest, the identity
// and where it looked.
absl::StatusOr<std::string> find_tokenizer(const std::string& manifest_path,
                                           const data::Manifest& manifest,
                                           const std::string& explicit_path);

// Token ids of each text (no end-of-text), through spm_encode.
absl::StatusOr<std::vector<std::vector<int32_t>>> spm_encode(const std::string& model_path,
                                                             const std::vector<std::string>& texts);

// The text of ids, through spm_decode.
absl::StatusOr<std::string> spm_decode(const std::string& model_path,
                                       const std::vector<int32_t>& ids);

// class_names x templates -> padded rows of `context` tokens.
absl::StatusOr<ZeroShotPrompts> tokenize_prompts(const std::string& model_path,
                                                 const std::vector<std::string>& class_names,
                                                 const std::vector<std::string>& templates,
                                                 int context);

}  // namespace tessera::eval
