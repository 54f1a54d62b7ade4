#include "distributed/zero_shards.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/error.h"

namespace tessera::distributed {

ZeroShards::ZeroShards(int64_t numel_, int64_t bucket_bytes, int dp_size_, int dp_rank_)
    : ZeroShards(numel_, bucket_bytes, dp_size_, dp_rank_, std::vector<int64_t>{0}) {}

ZeroShards::ZeroShards(int64_t numel_, int64_t bucket_bytes, int dp_size_, int dp_rank_,
                       const std::vector<int64_t>& cuts)
    : dp_size(dp_size_), dp_rank(dp_rank_), numel(numel_) {
  TESSERA_CHECK(dp_size >= 1 && dp_rank >= 0 && dp_rank < dp_size, "ZeroShards: rank ", dp_rank,
                " of ", dp_size);
  TESSERA_CHECK(numel >= 0, "ZeroShards: numel ", numel);
  const int64_t dp = dp_size;
  bucket_elements = std::max<int64_t>(dp, (bucket_bytes / int64_t(sizeof(float))) / dp * dp);
  TESSERA_CHECK(numel == 0 || (!cuts.empty() && cuts.front() == 0),
                "ZeroShards: the first segment must start at 0");
  for (size_t c = 0; c < cuts.size() && numel > 0; ++c) {
    const int64_t seg_end = c + 1 < cuts.size() ? cuts[c + 1] : numel;
    TESSERA_CHECK(cuts[c] < seg_end && seg_end <= numel, "ZeroShards: segment ", c, " [", cuts[c],
                  ", ", seg_end, ") of ", numel, " elements is empty or out of order");
    for (int64_t begin = cuts[c]; begin < seg_end; begin += bucket_elements) {
      add_bucket(begin, std::min(seg_end, begin + bucket_elements));
    }
  }
}

void ZeroShards::add_bucket(int64_t begin, int64_t end) {
  const int64_t dp = dp_size;
  Bucket b;
  b.begin = begin;
  b.end = end;
  b.shard = (b.end - b.begin + dp - 1) / dp;
  b.own_begin = std::min(b.end, b.begin + dp_rank * b.shard);
  b.own_end = std::min(b.end, b.own_begin + b.shard);
  b.offset = shard_numel;
  shard_numel += b.shard;
  own_numel += b.own();
  buckets.push_back(b);
}

std::vector<ShardPiece> shard_pieces(const std::vector<ZeroShards::Bucket>& buckets,
                                     const std::vector<std::pair<int64_t, int64_t>>& segments) {
  // Non-empty segments sorted by offset: the ones meeting a bucket are a contiguous run.
  std::vector<int> by_offset;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].second > 0) by_offset.push_back(static_cast<int>(i));
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [&](int a, int b) { return segments[a].first < segments[b].first; });
  std::vector<ShardPiece> pieces;
  std::vector<int> hit;
  for (const auto& b : buckets) {
    if (b.own() <= 0) continue;
    // The first segment ending after own_begin, then every one starting before own_end.
    auto it = std::upper_bound(
        by_offset.begin(), by_offset.end(), b.own_begin,
        [&](int64_t e, int s) { return e < segments[s].first + segments[s].second; });
    hit.clear();
    for (; it != by_offset.end() && segments[*it].first < b.own_end; ++it) hit.push_back(*it);
    std::sort(hit.begin(), hit.end());
    for (int s : hit) {
      const int64_t lo = std::max(b.own_begin, segments[s].first);
      const int64_t hi = std::min(b.own_end, segments[s].first + segments[s].second);
      pieces.push_back({s, lo - segments[s].first, b.offset + (lo - b.own_begin), hi - lo});
    }
  }
  return pieces;
}

std::string ZeroShards::describe() const {
  return absl::StrCat("ZeRO shards: rank ", dp_rank, "/", dp_size, ", ", buckets.size(),
                      " buckets of ", bucket_elements, " elements, ", shard_numel,
                      " shard elements (", own_numel, " of ", numel, " real)");
}

}  // namespace tessera::distributed
