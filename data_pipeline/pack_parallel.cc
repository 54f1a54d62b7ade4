#include "data_pipeline/pack_parallel.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace tessera::data {
namespace {

using nlohmann::json;

json encode_split(const RankSplit& s) {
  json shards = json::array();
  for (const ShardInfo& i : s.shards)
    shards.push_back({{"path", i.path()},
                      {"num_samples", i.num_samples()},
                      {"bytes", i.bytes()},
                      {"hash", i.content_hash()}});
  return {{"num_samples", s.num_samples}, {"shards", shards}};
}

RankSplit decode_split(const json& j) {
  RankSplit s;
  s.num_samples = j.at("num_samples").get<int64_t>();
  for (const json& k : j.at("shards")) {
    ShardInfo i;
    i.set_path(k.at("path").get<std::string>());
    i.set_num_samples(k.at("num_samples").get<int64_t>());
    i.set_bytes(k.at("bytes").get<int64_t>());
    i.set_content_hash(k.at("hash").get<std::string>());
    s.shards.push_back(std::move(i));
  }
  return s;
}

}  // namespace

std::string encode_rank_result(const absl::StatusOr<RankResult>& result) {
  if (!result.ok()) return json{{"error", std::string(result.status().message())}}.dump();
  json skipped = json::array();
  for (const SkippedInput& s : result->skipped)
    skipped.push_back({{"line", s.line}, {"path", s.path}, {"reason", s.reason}});
  return json{{"train", encode_split(result->train)},
              {"val", encode_split(result->val)},
              {"skipped", skipped}}
      .dump();
}

absl::StatusOr<RankResult> decode_rank_result(const std::string& text, int rank) {
  const std::string who = absl::StrCat("rank ", rank, ": ");
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return absl::InternalError(who + "sent an unreadable result (" + std::to_string(text.size()) +
                               " bytes)");
  if (auto it = j.find("error"); it != j.end()) {
    std::string message = it->get<std::string>();
    if (message.rfind("pack: ", 0) == 0) message.erase(0, 6);  // the caller says "pack" once
    return absl::InternalError(who + message);
  }
  try {
    RankResult r;
    r.train = decode_split(j.at("train"));
    r.val = decode_split(j.at("val"));
    for (const json& s : j.at("skipped"))
      r.skipped.push_back({s.at("line").get<int64_t>(), s.at("path").get<std::string>(),
                           s.at("reason").get<std::string>()});
    return r;
  } catch (const json::exception& e) {
    return absl::InternalError(who + "incomplete result: " + e.what());
  }
}

}  // namespace tessera::data
