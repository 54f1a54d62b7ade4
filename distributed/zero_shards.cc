#include "distributed/zero_shards.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/error.h"

namespace tessera::distributed {

ZeroShards::ZeroShards(int64_t numel_, int64_t bucket_bytes, int dp_size_, int dp_rank_)
    : dp_size(dp_size_), dp_rank(dp_rank_), numel(numel_) {
  TESSERA_CHECK(dp_size >= 1 && dp_rank >= 0 && dp_rank < dp_size, "ZeroShards: rank ", dp_rank,
                " of ", dp_size);
  TESSERA_CHECK(numel >= 0, "ZeroShards: numel ", numel);
  const int64_t dp = dp_size;
  bucket_elements = std::max<int64_t>(dp, (bucket_bytes / int64_t(sizeof(float))) / dp * dp);
  for (int64_t begin = 0; begin < numel; begin += bucket_elements) {
    Bucket b;
    b.begin = begin;
    b.end = std::min(numel, begin + bucket_elements);
    b.shard = (b.end - b.begin + dp - 1) / dp;
    b.own_begin = std::min(b.end, b.begin + dp_rank * b.shard);
    b.own_end = std::min(b.end, b.own_begin + b.shard);
    b.offset = shard_numel;
    shard_numel += b.shard;
    own_numel += b.own();
    buckets.push_back(b);
  }
}

std::string ZeroShards::describe() const {
  return absl::StrCat("ZeRO shards: rank ", dp_rank, "/", dp_size, ", ", buckets.size(),
                      " buckets of ", bucket_elements, " elements, ", shard_numel,
                      " shard elements (", own_numel, " of ", numel, " real)");
}

}  // namespace tessera::distributed
