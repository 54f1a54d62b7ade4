#pragma once
// Tokenises zero-shot prompts for a CLIP split with the SentencePiece model its captions were
// packed with (data::Tokenizer::encode_padded: the packed layout — ids truncated to context - 1,
// end-of-text, pad), and finds that model for a split.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "eval/clip_eval.h"
#include "proto/data.pb.h"

namespace tessera::eval {

// The .model for a split, checked against the manifest's tokenizer identity
// ("sentencepiece:<content hash>"): `explicit_path` when given; else the manifest's
// tokenizer_model (copied beside it by `tessera pack`); else a *.model file next to the
// manifest or in its parent directory with that hash. Errors name the manifest, the identity
// and where it looked.
absl::StatusOr<std::string> find_tokenizer(const std::string& manifest_path,
                                           const data::Manifest& manifest,
                                           const std::string& explicit_path);

// class_names x templates -> padded rows of `context` tokens.
absl::StatusOr<ZeroShotPrompts> tokenize_prompts(const std::string& model_path,
                                                 const std::vector<std::string>& class_names,
                                                 const std::vector<std::string>& templates,
                                                 int context);

}  // namespace tessera::eval
