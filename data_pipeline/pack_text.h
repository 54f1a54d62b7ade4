#pragma once
// Packing text for GPT: a text file -> token-stream shards (data_pipeline/text_shard.h) plus
// DIR/train.pbtxt and DIR/val.pbtxt manifests (kind "text"). `tessera pack --text` is the front
// end.
//
// Input: one paragraph per line, documents separated by empty lines (what
// scripts/make_demo_data writes as corpus.txt). Each paragraph is tokenised and goes, whole, to
// the split that split_of(paragraph text) names; a document's end appends end-of-text to each
// split that received a paragraph of it. Splitting by paragraph (not document) keeps val a
// sample of the whole text when there are few documents (the demo corpus has a dozen licences).

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data_pipeline/pack.h"

namespace tessera::data {

struct TextPackOptions {
  std::string text_path;        // required
  std::string out_dir;          // gets SPLIT-00000.h5 ..., SPLIT.pbtxt, tokenizer.model
  std::string tokenizer_model;  // SentencePiece .model, required
  int64_t tokens_per_shard = int64_t(1) << 20;
  double val_fraction = 0.1;
  std::function<void(int64_t done, int64_t total)> progress;  // lines done, lines in all
};

struct TextPackReport {
  int64_t paragraphs = 0, documents = 0;
  std::vector<SplitReport> splits;  // train, then val; num_samples counts tokens
  std::string tokenizer;
};

absl::StatusOr<TextPackReport> pack_text(const TextPackOptions& options);

}  // namespace tessera::data
