#pragma once
// Text shards for GPT (data_pipeline/FORMAT.md, "Text shards"): one HDF5 file holding a token
// stream, documents separated by the end-of-text id. A training sample is a window of
// context + 1 consecutive tokens (inputs and shifted targets), so the stream is stored flat and
// windows are cut by the reader: the window length is the model's choice, not the packer's.
//
//   dataset  text_tokens (T,) int32, chunked (65,536 tokens), Fletcher32
//   attrs    format_version 1, num_tokens T, eot_id, kind "text", tokenizer (identity string)

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hdf5/hdf5_util.h"

namespace tessera::data {

inline constexpr const char* kTextTokens = "text_tokens";
inline constexpr int64_t kTextChunkTokens = 65536;

// Writes PATH.tmp, then renames it to PATH (a shard is complete or absent).
absl::Status write_text_shard(const std::string& path, std::span<const int32_t> tokens,
                              const std::string& tokenizer, int32_t eot_id);

class TextShardReader {
 public:
  // Checks format_version, num_tokens against the dataset, dtype int32, rank 1, chunked with
  // Fletcher32. Errors name the file and the attribute or dataset.
  static absl::StatusOr<std::unique_ptr<TextShardReader>> open(const std::string& path);

  // Tokens [first, first + count). A corrupt chunk is a DataLoss error naming the file and the
  // token range. Not for use across fork() (like ShardReader).
  absl::StatusOr<std::vector<int32_t>> read(int64_t first, int64_t count) const;

  // Reads every chunk of 'text_tokens' once (read() over the chunk grid), so each chunk's
  // Fletcher32 is checked; each bad chunk goes to on_bad (read()'s error: file, dataset, token
  // range) and verification goes on. Returns the chunks read; *bad counts the bad ones.
  int64_t verify(const std::function<void(const absl::Status&)>& on_bad, int64_t* bad) const;
  int64_t chunk_tokens() const { return chunk_tokens_; }

  const std::string& path() const { return path_; }
  int64_t num_tokens() const { return num_tokens_; }
  int32_t eot_id() const { return eot_id_; }

 private:
  explicit TextShardReader(std::string path) : path_(std::move(path)) {}
  std::string path_;
  hdf5::H5Handle file_, tokens_;
  int64_t num_tokens_ = 0, chunk_tokens_ = 1;
  int32_t eot_id_ = -1;
};

}  // namespace tessera::data
