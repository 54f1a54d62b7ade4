#pragma once
// ZeroShards: how ZeRO stage 1 cuts the flat gradient / parameter buffer (docs/DESIGN.md decision
// 3) among the data-parallel ranks. Shared by GradSync (which reduce-scatters the gradients into
// this rank's shards) and train::ZeroAdamW (which owns the Adam moments of those shards only,
// updates them and all-gathers the parameters).
//
// Shards are cut PER BUCKET, not as one contiguous 1/dp of the whole buffer. Why: GradSync
// launches a bucket's collective as soon as backward has finalised it; a reduce-scatter of one
// bucket delivers 1/dp of THAT bucket to each rank, so keeping the overlap with backward means
// each rank owns 1/dp of every bucket. (One contiguous shard per rank would need each bucket
// reduced to the one or two ranks owning it, or waiting for the whole buffer.)
//
//   flat buffer (N):  | bucket 0 (E elems)     | bucket 1 (E)           | ... | last (L <= E)  pad
//   | rank r owns:        [r*E/dp, (r+1)*E/dp)     [r*E/dp, (r+1)*E/dp)            [r*s, (r+1)*s)
//   shard buffer:     | b0 of rank r | b1 of rank r | ... | last of rank r (s) |
//
// E, the bucket length in ZeRO mode, is bucket_bytes / 4 rounded DOWN to a multiple of dp (at
// least dp), so every full bucket splits into equal shards with no padding. Only the last bucket
// (length L) may not divide: its shard length is s = ceil(L / dp) and it is padded with zeros to
// dp * s for the collectives; the ranks whose shard lies (partly) beyond N own fewer real elements
// (possibly none) but still take part in every collective. Padding is under dp elements in all.
//
// ZeRO-3 (the second constructor) also cuts at given segment boundaries (the parameter gather
// units, models::ParamStore::unit_bounds()): no bucket crosses one, each segment is cut into
// buckets of E from its start, and the last bucket of every segment may be padded, so padding
// can sit in the middle of the flat buffer. Then a unit's buckets, gathered one after another,
// are the unit's elements in flat order with its padding at the end.
//
// This rank's shard elements, concatenated in bucket order, form the "shard buffer" of length
// shard_numel() = sum over buckets of shard lengths (about N / dp): the reduced gradient shard,
// the moments m and v and the slice of the decay mask all have this layout.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tessera::distributed {

struct ZeroShards {
  struct Bucket {
    int64_t begin = 0, end = 0;  // [begin, end) in the flat buffer
    int64_t shard = 0;           // elements per rank; the bucket is padded to dp * shard
    int64_t own_begin = 0;       // this rank's real elements: [own_begin, own_end) of the flat
    int64_t own_end = 0;         //   buffer, clamped to the bucket (empty when all padding)
    int64_t offset = 0;          // where this rank's shard starts in the shard buffer
    int64_t own() const { return own_end - own_begin; }
    bool padded(int dp) const { return end - begin != int64_t(dp) * shard; }
  };

  // numel: N; bucket_bytes: the configured bucket size (parallel.bucket_bytes); dp_size/dp_rank:
  // this rank in the data-parallel group.
  ZeroShards(int64_t numel, int64_t bucket_bytes, int dp_size, int dp_rank);
  // Buckets that never cross a segment boundary: `cuts` are the segments' first elements,
  // increasing, the first 0, all < numel (a single {0}: the layout above).
  ZeroShards(int64_t numel, int64_t bucket_bytes, int dp_size, int dp_rank,
             const std::vector<int64_t>& cuts);

  int dp_size = 1, dp_rank = 0;
  int64_t numel = 0;            // N
  int64_t bucket_elements = 0;  // E, a multiple of dp_size
  int64_t shard_numel = 0;      // this rank's shard buffer length (the same on every rank)
  int64_t own_numel = 0;        // real (non-padding) elements this rank owns
  std::vector<Bucket> buckets;

  std::string describe() const;  // "ZeRO shards: rank 1/4, 3 buckets of 1024, 2560 elements"

 private:
  void add_bucket(int64_t begin, int64_t end);
};

// One non-empty intersection of a bucket's own range [own_begin, own_end) with a segment of the
// flat buffer (a parameter: [offset, offset + numel)).
struct ShardPiece {
  int segment = 0;         // index into the segments given
  int64_t in_segment = 0;  // the piece's first element, counted from the segment's start
  int64_t in_shard = 0;    // ... in the shard buffer (bucket.offset + its place in the own range)
  int64_t length = 0;      // > 0
};
// Every piece of `buckets` x `segments` ((offset, numel) pairs, not overlapping, any order),
// bucket after bucket, each bucket's pieces in segment-index order (callers that sum over the
// pieces rely on it). The one place that intersects shard buckets with parameters for sharded
// init, the shard's decay mask and the per-parameter gradient norm (checkpoint reads cut the same
// ranges into boxes with checkpoint/slices.h's range_boxes()).
std::vector<ShardPiece> shard_pieces(const std::vector<ZeroShards::Bucket>& buckets,
                                     const std::vector<std::pair<int64_t, int64_t>>& segments);

}  // namespace tessera::distributed
