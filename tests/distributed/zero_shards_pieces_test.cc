// distributed::shard_pieces() (the bucket x parameter intersection behind sharded init, the
// shard's decay mask, ZeroAdamW's per-parameter norm) against a brute-force intersection, element
// by element: for every rank's own element of every bucket, the segment holding it and its place
// in the segment and in the shard buffer. Odd sizes: uneven shards, padding, segments spanning
// buckets, empty segments, ranks owning nothing, holes no segment covers, segments given out of
// offset order (as a ParamStore's parameters are: reverse registration order).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "distributed/zero_shards.h"

namespace tessera::distributed {
namespace {

using Segments = std::vector<std::pair<int64_t, int64_t>>;  // (offset, numel)

// Segments of the given sizes laid out back to back in REVERSE index order from `start`, with
// `gap` uncovered elements between neighbours.
Segments reverse_layout(const std::vector<int64_t>& sizes, int64_t start = 0, int64_t gap = 0) {
  Segments segs(sizes.size());
  int64_t at = start;
  for (size_t i = sizes.size(); i-- > 0;) {
    segs[i] = {at, sizes[i]};
    at += sizes[i] + gap;
  }
  return segs;
}

int64_t end_of(const Segments& segs) {
  int64_t end = 0;
  for (const auto& [o, n] : segs) end = std::max(end, o + n);
  return end;
}

void check(const ZeroShards& z, const Segments& segs, const std::string& what) {
  SCOPED_TRACE(absl::StrCat(what, ", ", z.describe()));
  // Brute force: shard-buffer element -> (segment, element in the segment).
  std::map<int64_t, std::pair<int, int64_t>> want;
  for (const auto& b : z.buckets) {
    for (int64_t e = b.own_begin; e < b.own_end; ++e) {
      for (size_t s = 0; s < segs.size(); ++s) {
        if (segs[s].first <= e && e < segs[s].first + segs[s].second) {
          want[b.offset + (e - b.own_begin)] = {int(s), e - segs[s].first};
        }
      }
    }
  }
  std::map<int64_t, std::pair<int, int64_t>> got;
  std::tuple<int, int> last{-1, -1};  // (bucket, segment) of the previous piece
  for (const ShardPiece& p : shard_pieces(z.buckets, segs)) {
    ASSERT_GT(p.length, 0);
    ASSERT_TRUE(p.segment >= 0 && p.segment < int(segs.size()));
    // The bucket whose shard holds the piece; the piece never leaves it.
    int bucket = -1;
    for (size_t i = 0; i < z.buckets.size(); ++i) {
      const auto& b = z.buckets[i];
      if (b.offset <= p.in_shard && p.in_shard + p.length <= b.offset + b.own()) bucket = int(i);
    }
    ASSERT_GE(bucket, 0) << "piece at shard element " << p.in_shard << " length " << p.length;
    // Bucket after bucket, each bucket's pieces in segment order, one piece per pair.
    const std::tuple<int, int> here{bucket, p.segment};
    EXPECT_LT(last, here);
    last = here;
    for (int64_t i = 0; i < p.length; ++i) {
      EXPECT_TRUE(got.emplace(p.in_shard + i, std::make_pair(p.segment, p.in_segment + i)).second)
          << "shard element " << p.in_shard + i << " twice";
    }
  }
  EXPECT_EQ(got, want);
}

TEST(ShardPieces, EqualTheElementByElementIntersection) {
  const std::vector<int64_t> sizes = {7, 0, 13, 1, 29, 3, 0, 64, 5, 2};
  const Segments segs = reverse_layout(sizes);
  const int64_t n = end_of(segs);  // 124
  for (int dp = 1; dp <= 4; ++dp) {
    for (int64_t bucket_elems : {1, 5, 9, 40, 1000}) {
      for (int r = 0; r < dp; ++r) {
        check(ZeroShards(n, 4 * bucket_elems, dp, r), segs,
              absl::StrCat("one segment, buckets of ", bucket_elems));
        // Buckets cut at some segment starts (ZeRO-3's unit bounds): padding mid-buffer.
        std::vector<int64_t> cuts = {0, segs[7].first, segs[4].first, segs[2].first};
        std::sort(cuts.begin(), cuts.end());
        check(ZeroShards(n, 4 * bucket_elems, dp, r, cuts), segs,
              absl::StrCat("cut at units, buckets of ", bucket_elems));
      }
    }
  }
}

TEST(ShardPieces, HolesTinyBuffersAndRanksThatOwnNothing) {
  // Uncovered elements between segments (and before the first) yield nothing.
  const Segments holes = reverse_layout({4, 11, 0, 6}, /*start=*/3, /*gap=*/2);
  for (int dp : {1, 3, 4}) {
    for (int r = 0; r < dp; ++r) {
      check(ZeroShards(end_of(holes) + 5, 4 * 3, dp, r), holes, "holes");
    }
  }
  // 3 elements on 4 ranks: the last rank's shard is all padding.
  const Segments tiny = reverse_layout({2, 1});
  for (int r = 0; r < 4; ++r) check(ZeroShards(3, 4 * 8, 4, r), tiny, "tiny");
  ZeroShards last(3, 4 * 8, 4, 3);
  EXPECT_EQ(last.own_numel, 0);
  EXPECT_TRUE(shard_pieces(last.buckets, tiny).empty());
  // No buckets, no segments.
  EXPECT_TRUE(shard_pieces(ZeroShards(0, 64, 2, 1).buckets, tiny).empty());
  EXPECT_TRUE(shard_pieces(ZeroShards(40, 64, 2, 1).buckets, {}).empty());
}

}  // namespace
}  // namespace tessera::distributed
