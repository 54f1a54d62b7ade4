#include "data_pipeline/shard_verify.h"

#include <algorithm>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/text_shard.h"

namespace tessera::data {

ShardVerifyResult verify_shard(const std::string& path, const std::string& expected_hash,
                               bool map) {
  ShardVerifyResult result;
  result.path = path;
  auto on_bad = [&](const absl::Status& s) { result.bad.emplace_back(s.message()); };
  if (!expected_hash.empty()) {
    auto hash = file_content_hash(path);
    if (!hash.ok())
      result.bad.push_back(absl::StrCat("shard ", path, ": ", hash.status().message()));
    else if (*hash != expected_hash)
      result.bad.push_back(absl::StrCat("shard ", path, ": content hash ", *hash,
                                        ", manifest records ", expected_hash));
  }
  auto images = ShardReader::open(path);
  if (images.ok()) {
    result.kind = "images";
    const ShardReader::VerifyCounts counts = (*images)->verify(on_bad, map);
    result.chunks = counts.chunks;
    result.bytes = counts.bytes;
    result.images = counts.images;
    return result;
  }
  auto text = TextShardReader::open(path);
  if (text.ok()) {
    result.kind = "text";
    int64_t bad = 0;
    result.chunks = (*text)->verify(on_bad, &bad);
    result.bytes = (*text)->num_tokens() * 4;
    return result;
  }
  // Neither opens: the image reader's error, unless the file lacks what makes an image shard
  // (then it is taken for a text shard, and the text reader's error says more).
  const std::string why(images.status().message());
  const bool text_file = why.find("missing file attribute 'resolution'") != why.npos ||
                         why.find("missing dataset 'images'") != why.npos;
  on_bad(text_file ? text.status() : images.status());
  return result;
}

namespace {
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\t', ' ');
  return s;
}
}  // namespace

std::string encode_verify_results(const std::vector<ShardVerifyResult>& results) {
  std::string out;
  for (const ShardVerifyResult& r : results) {
    absl::StrAppend(&out, "S\t", one_line(r.path), "\t", r.kind, "\t", r.chunks, "\t", r.bytes,
                    "\t", r.images, "\n");
    for (const std::string& b : r.bad) absl::StrAppend(&out, "B\t", one_line(b), "\n");
  }
  return out;
}

std::vector<ShardVerifyResult> decode_verify_results(const std::string& text) {
  std::vector<ShardVerifyResult> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f[0] == "S" && f.size() == 6) {
      ShardVerifyResult r;
      r.path = f[1];
      r.kind = f[2];
      r.chunks = std::stoll(f[3]);
      r.bytes = std::stoll(f[4]);
      r.images = std::stoll(f[5]);
      out.push_back(std::move(r));
    } else if (f[0] == "B" && f.size() == 2 && !out.empty()) {
      out.back().bad.push_back(f[1]);
    }
  }
  return out;
}

}  // namespace tessera::data
