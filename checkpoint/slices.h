#pragma once
// Slices of tensors as boxes (start, count per dimension), the unit a checkpoint stores and reads.
//
// A rank's part of a parameter is always a set of boxes in the tensor's GLOBAL coordinates, each
// of which is CONTIGUOUS in the rank's memory:
//   - a tensor-parallel shard: one box (local_begin along split_dim), the whole local tensor;
//   - a ZeRO-1 range of the flat buffer: the range cut at parameter boundaries, and each cut
//     decomposed row-major into at most 2 * ndim - 1 boxes (a partial row, full rows, a partial
//     row, recursively), each a contiguous run of the local tensor.
// Resharding is then intersection of boxes: whatever layout wrote a tensor, a reader selects the
// overlap of each stored piece with each box it needs (HDF5 hyperslabs on both sides).

#include <cstdint>
#include <string>
#include <vector>

#include "models/param_store.h"

namespace tessera::checkpoint::detail {

struct Box {
  std::vector<int64_t> start, count;
  int64_t numel() const;
};

// A box of one parameter and where its elements lie in memory: `memory` elements from the start
// of the buffer the caller reads from or writes to (contiguous, row-major over `box.count`).
struct PlacedBox {
  Box box;  // global coordinates
  int64_t memory = 0;
};

// Scalars are stored as shape (1).
Shape storage_shape(const Shape& shape);

// Row-major decomposition of the flat range [begin, end) of a tensor of `shape` into boxes
// (local coordinates); `memory` of each is its flat start, relative to `begin`.
std::vector<PlacedBox> decompose_range(const Shape& shape, int64_t begin, int64_t end);

// The parameter's local shard as one box in global coordinates.
Box shard_box(const models::ParamInfo& info);

// Shifts a box of the local shard into global coordinates.
Box to_global(const models::ParamInfo& info, Box local);

// The boxes of parameter `info` that fall in the flat-buffer range [begin, end) (a ZeRO-1 own
// range), in global coordinates; `memory` is relative to `begin`.
std::vector<PlacedBox> range_boxes(const models::ParamInfo& info, int64_t begin, int64_t end);

// The intersection of a and b; false when empty.
bool intersect(const Box& a, const Box& b, Box* out);

// "[0:16, 32:64]"
std::string describe(const Box& box);

}  // namespace tessera::checkpoint::detail
