// The box decomposition behind ZeRO-1 checkpoint pieces, against brute force: for many shapes
// and flat ranges, the boxes cover exactly the range, each box is contiguous in row-major order
// and starts at its stated memory offset, and TP shards shift along the split dimension.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "checkpoint/slices.h"

namespace tessera::checkpoint::detail {
namespace {

// Flat row-major indices of the elements of `box` in a tensor of `shape`, in row-major order.
std::vector<int64_t> elements(const Shape& shape, const Box& box) {
  std::vector<int64_t> out;
  const size_t n = shape.size();
  std::vector<int64_t> idx(box.start.begin(), box.start.end());
  if (box.numel() == 0) return out;
  while (true) {
    int64_t flat = 0;
    for (size_t d = 0; d < n; ++d) flat = flat * shape[d] + idx[d];
    out.push_back(flat);
    size_t d = n;
    while (d > 0) {
      --d;
      if (++idx[d] < box.start[d] + box.count[d]) break;
      idx[d] = box.start[d];
      if (d == 0) return out;
    }
  }
}

TEST(CheckpointSlices, RangesDecomposeIntoContiguousBoxes) {
  std::mt19937 rng(7);
  const std::vector<Shape> shapes = {{7}, {3, 5}, {4, 1, 6}, {2, 3, 4, 5}, {1, 1}, {5, 2, 1}};
  for (const Shape& shape : shapes) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    for (int trial = 0; trial < 200; ++trial) {
      int64_t a = rng() % (numel + 1), b = rng() % (numel + 1);
      if (a > b) std::swap(a, b);
      const auto boxes = decompose_range(shape, a, b);
      EXPECT_LE(boxes.size(), 2 * shape.size());
      std::vector<int64_t> seen;
      for (const PlacedBox& p : boxes) {
        const auto e = elements(shape, p.box);
        ASSERT_FALSE(e.empty());
        for (size_t i = 0; i < e.size(); ++i) {
          ASSERT_EQ(e[i], a + p.memory + int64_t(i)) << "box not contiguous at its memory offset";
        }
        seen.insert(seen.end(), e.begin(), e.end());
      }
      std::sort(seen.begin(), seen.end());
      std::vector<int64_t> want(size_t(b - a));
      std::iota(want.begin(), want.end(), a);
      EXPECT_EQ(seen, want) << "range [" << a << ", " << b << ")";
    }
  }
}

TEST(CheckpointSlices, ShardAndRangeBoxesAreGlobal) {
  models::ParamInfo info;
  info.spec.name = "w";
  info.spec.shape = {4, 6};
  info.spec.split_dim = 1;
  info.local_shape = {4, 3};
  info.local_begin = 3;  // TP rank 1 of 2
  info.offset = 100;
  info.numel = 12;
  const Box shard = shard_box(info);
  EXPECT_EQ(shard.start, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(shard.count, (std::vector<int64_t>{4, 3}));
  // Flat range [105, 120) of the buffer: local elements 5..11 -> row 1 cols 2, rows 2..3.
  const auto boxes = range_boxes(info, 105, 120);
  ASSERT_EQ(boxes.size(), 2u);
  EXPECT_EQ(boxes[0].box.start, (std::vector<int64_t>{1, 5}));
  EXPECT_EQ(boxes[0].box.count, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(boxes[0].memory, 0);
  EXPECT_EQ(boxes[1].box.start, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(boxes[1].box.count, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(boxes[1].memory, 1);
  Box both;
  EXPECT_TRUE(intersect(boxes[1].box, Box{{3, 0}, {5, 4}}, &both));
  EXPECT_EQ(describe(both), "[3:4, 3:4]");
  EXPECT_FALSE(intersect(boxes[0].box, boxes[1].box, &both));
}

}  // namespace
}  // namespace tessera::checkpoint::detail
