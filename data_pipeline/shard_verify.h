#pragma once
// Verifying whole shards (tessera inspect --verify): every chunk of every dataset read once, so
// that each Fletcher32 checksum is checked, and (for a shard listed in a manifest) the file's
// content hash compared first. Works on image shards (ShardReader::verify) and text shards
// (TextShardReader::verify); each bad chunk is reported on its own and the rest still checked.

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::data {

struct ShardVerifyResult {
  std::string path;
  std::string kind;               // "images", "text", or "" when the shard could not be opened
  int64_t chunks = 0, bytes = 0;  // chunks read; bytes: their stored data bytes
  int64_t images = 0;             // format version 2: encoded images decoded
  std::vector<std::string> bad;   // one message per problem: file, dataset, samples (or tokens)
  bool ok() const { return bad.empty(); }
};

// expected_hash: the manifest's content_hash for the shard ("" = none to compare). map: see
// ShardReader::verify (false reads every chunk through HDF5's filter pipeline).
ShardVerifyResult verify_shard(const std::string& path, const std::string& expected_hash = "",
                               bool map = true);

// One line per result ("\n"-free fields) and back, to gather results across MPI ranks.
std::string encode_verify_results(const std::vector<ShardVerifyResult>& results);
std::vector<ShardVerifyResult> decode_verify_results(const std::string& text);

}  // namespace tessera::data
