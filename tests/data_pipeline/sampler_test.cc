// GlobalSampler: the order depends on (seed, epoch, position) only, never on the DP size; an
// epoch is a permutation; a saved cursor resumes exactly; windows keep reads local.
#include "data_pipeline/global_sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
#include <set>
#include <utility>
#include <vector>

#include "core/error.h"

namespace tessera::data {
namespace {

using Batch = std::vector<SampleRef>;
}  // namespace

// gtest prints failing SampleRefs as {shard, index}.
void PrintTo(const SampleRef& r, std::ostream* os) {
  *os << "{" << r.shard << ", " << r.index << "}";
}

namespace {

// Uneven shards, one empty: 288 samples, divisible by G = 12 (and by 1, 2, 3, 4 ranks).
DatasetShape test_shape() {
  return DatasetShape{{37, 0, 50, 23, 64, 41, 18, 55}};
}

SamplerConfig config(uint64_t seed, int64_t G, int64_t window, int rank = 0, int size = 1) {
  SamplerConfig c;
  c.seed = seed;
  c.global_batch = G;
  c.shuffle_window = window;
  c.dp_rank = rank;
  c.dp_size = size;
  return c;
}

// `batches` global batches read by `dp_size` ranks, each starting at `start`, concatenated in
// rank order: what the whole job sees.
std::vector<Batch> global_batches(const DatasetShape& shape, SamplerConfig c, int dp_size,
                                  int batches, Cursor start = {}) {
  std::vector<GlobalSampler> ranks;
  for (int r = 0; r < dp_size; ++r) {
    c.dp_rank = r;
    c.dp_size = dp_size;
    ranks.emplace_back(shape, c);
    ranks.back().seek(start);
  }
  std::vector<Batch> out(static_cast<size_t>(batches));
  for (int b = 0; b < batches; ++b)
    for (GlobalSampler& s : ranks) {
      Batch part = s.next_batch();
      EXPECT_EQ(int64_t(part.size()), c.global_batch / dp_size);
      out[size_t(b)].insert(out[size_t(b)].end(), part.begin(), part.end());
    }
  for (GlobalSampler& s : ranks) EXPECT_EQ(s.cursor(), ranks[0].cursor());
  return out;
}

TEST(GlobalSampler, WorldSizes1To4SeeIdenticalGlobalBatches) {
  const DatasetShape shape = test_shape();
  const SamplerConfig c = config(7, 12, 3);
  // 60 batches: two full epochs of 24 and half of the third.
  const std::vector<Batch> one = global_batches(shape, c, 1, 60);
  for (int D = 2; D <= 4; ++D) EXPECT_EQ(global_batches(shape, c, D, 60), one) << "D=" << D;
  // And global batch g of epoch e holds positions [g*G, (g+1)*G) of the order function.
  GlobalSampler order(shape, c);
  for (int b = 0; b < 60; ++b)
    for (int i = 0; i < 12; ++i)
      ASSERT_EQ(one[size_t(b)][size_t(i)], order.at(b / 24, (b % 24) * 12 + i)) << b << " " << i;
}

TEST(GlobalSampler, EpochCoversEverySampleExactlyOnce) {
  const DatasetShape shape = test_shape();
  for (int64_t window : {1, 3, 8, 100}) {
    GlobalSampler s(shape, config(3, 12, window));
    ASSERT_EQ(s.batches_per_epoch(), 24);
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      std::set<std::pair<int32_t, int64_t>> seen;
      for (int b = 0; b < 24; ++b)
        for (const SampleRef& r : s.next_batch()) {
          ASSERT_GE(r.shard, 0);
          ASSERT_LT(r.shard, 8);
          ASSERT_GE(r.index, 0);
          ASSERT_LT(r.index, shape.shard_sizes[size_t(r.shard)]);
          seen.insert({r.shard, r.index});
        }
      EXPECT_EQ(seen.size(), 288u) << "window " << window << " epoch " << epoch;
      EXPECT_EQ(s.cursor(), (Cursor{epoch + 1, 0}));
    }
  }
}

TEST(GlobalSampler, EpochTailIsDroppedNotWrapped) {
  // G = 10 over 288 samples: 28 batches, the last 8 positions of each epoch are not read.
  GlobalSampler s(test_shape(), config(3, 10, 2));
  ASSERT_EQ(s.batches_per_epoch(), 28);
  std::set<std::pair<int32_t, int64_t>> seen;
  for (int b = 0; b < 28; ++b) {
    EXPECT_EQ(s.cursor(), (Cursor{0, b * 10}));
    for (const SampleRef& r : s.next_batch()) seen.insert({r.shard, r.index});
  }
  EXPECT_EQ(seen.size(), 280u);
  EXPECT_EQ(s.cursor(), (Cursor{1, 0}));
  // The first batch of epoch 1 is its positions [0, 10), not epoch 0's tail.
  const Batch next = s.next_batch();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(next[size_t(i)], s.at(1, i));
}

TEST(GlobalSampler, SeedsAndEpochsGiveDifferentOrders) {
  const DatasetShape shape = test_shape();
  GlobalSampler a(shape, config(1, 12, 3)), b(shape, config(2, 12, 3)), a2(shape, config(1, 12, 3));
  std::vector<SampleRef> a0, a1, b0, again;
  for (int64_t p = 0; p < 288; ++p) {
    a0.push_back(a.at(0, p));
    a1.push_back(a.at(1, p));
    b0.push_back(b.at(0, p));
    again.push_back(a2.at(0, p));
  }
  EXPECT_EQ(a0, again) << "the same seed must give the same order";
  EXPECT_NE(a0, b0) << "two seeds gave the same order";
  EXPECT_NE(a0, a1) << "two epochs gave the same order";
  EXPECT_NE(a.shard_order(0), b.shard_order(0));
  EXPECT_NE(a.shard_order(0), a.shard_order(1));
  // Not merely a rotation or the identity: most positions differ between seeds and epochs.
  int same_seed = 0, same_epoch = 0;
  for (size_t i = 0; i < a0.size(); ++i) {
    same_seed += a0[i] == b0[i];
    same_epoch += a0[i] == a1[i];
  }
  EXPECT_LT(same_seed, 20);
  EXPECT_LT(same_epoch, 20);
}

TEST(GlobalSampler, RandomAccessEqualsSequentialOrder) {
  // at() caches one epoch plan and two windows; jumping around must not change any answer.
  const DatasetShape shape = test_shape();
  GlobalSampler seq(shape, config(5, 12, 2)), jump(shape, config(5, 12, 2));
  std::vector<SampleRef> forward;
  for (int64_t e = 0; e < 3; ++e)
    for (int64_t p = 0; p < 288; ++p) forward.push_back(seq.at(e, p));
  for (int64_t k = 3 * 288 - 1; k >= 0; k -= 7)
    ASSERT_EQ(jump.at(k / 288, k % 288), forward[size_t(k)]) << k;
}

TEST(GlobalSampler, ResumeFromCursorWithAnyDpSizeContinuesExactly) {
  const DatasetShape shape = test_shape();
  const SamplerConfig c = config(11, 12, 3);
  const int total = 40;  // crosses the epoch boundary at batch 24
  const std::vector<Batch> uninterrupted = global_batches(shape, c, 2, total);
  for (int k : {0, 1, 5, 23, 24, 31}) {
    // Run k batches on 2 ranks, save the cursor (identical on every rank).
    std::vector<Batch> first = global_batches(shape, c, 2, k);
    GlobalSampler probe(shape, config(11, 12, 3, 0, 2));
    for (int b = 0; b < k; ++b) probe.next_batch();
    const Cursor saved = probe.cursor();
    EXPECT_EQ(saved, (Cursor{k / 24, (k % 24) * 12})) << "k=" << k;
    for (int D : {1, 2, 3, 4}) {
      std::vector<Batch> rest = global_batches(shape, c, D, total - k, saved);
      first.resize(size_t(k));
      std::vector<Batch> joined = first;
      joined.insert(joined.end(), rest.begin(), rest.end());
      EXPECT_EQ(joined, uninterrupted) << "stopped after " << k << ", resumed on " << D;
    }
  }
}

TEST(GlobalSampler, SeekPastTheLastFullBatchMovesToTheNextEpoch) {
  GlobalSampler s(test_shape(), config(1, 10, 2));
  s.seek(Cursor{2, 285});  // 3 positions left < G
  EXPECT_EQ(s.cursor(), (Cursor{3, 0}));
  s.seek(Cursor{2, 288});
  EXPECT_EQ(s.cursor(), (Cursor{3, 0}));
  s.seek(Cursor{2, 278});  // exactly one batch left
  EXPECT_EQ(s.cursor(), (Cursor{2, 278}));
}

// Every sample of window w (the w-th group of `window` shards in shard_order) comes from the
// window's shards and occupies one contiguous range of positions; so a global batch with G no
// larger than a window draws from at most 2 windows, i.e. at most 2*window shards.
TEST(GlobalSampler, SamplesStayInsideTheirWindowOfShards) {
  const DatasetShape shape = test_shape();
  for (int64_t W : {1, 2, 3}) {
    GlobalSampler s(shape, config(9, 12, W));
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      const std::vector<int32_t> order = s.shard_order(epoch);
      ASSERT_EQ(order.size(), 8u);
      ASSERT_EQ(std::set<int32_t>(order.begin(), order.end()).size(), 8u);
      int64_t position = 0;
      bool interleaved = false;
      for (size_t first = 0; first < order.size(); first += size_t(W)) {
        std::set<int32_t> window(order.begin() + first,
                                 order.begin() + std::min(order.size(), first + size_t(W)));
        int64_t n = 0;
        for (int32_t shard : window) n += shape.shard_sizes[size_t(shard)];
        int32_t previous = -1;
        int changes = 0;
        for (int64_t p = position; p < position + n; ++p) {
          const SampleRef r = s.at(epoch, p);
          ASSERT_TRUE(window.count(r.shard))
              << "W=" << W << " epoch " << epoch << " position " << p << " read shard " << r.shard;
          changes += previous != -1 && r.shard != previous;
          previous = r.shard;
        }
        // A window of several non-empty shards is mixed, not read shard after shard.
        interleaved |= changes > int(window.size());
        position += n;
      }
      EXPECT_EQ(position, 288);
      if (W > 1) {
        EXPECT_TRUE(interleaved) << "W=" << W << ": samples were not shuffled";
      }
    }
    // The batch-level guarantee that follows.
    GlobalSampler batches(shape, config(9, 12, W));
    for (int b = 0; b < 24; ++b) {
      std::set<int32_t> shards;
      for (const SampleRef& r : batches.next_batch()) shards.insert(r.shard);
      EXPECT_LE(int64_t(shards.size()), 2 * W) << "batch " << b;
    }
  }
}

// The order is part of the checkpoint format: a resumed run on a newer build must read the same
// samples. If this changes on purpose, say so in the release notes (old cursors then resume into
// a different order).
TEST(GlobalSampler, OrderIsPinned) {
  GlobalSampler s(test_shape(), config(0, 4, 2));
  const Batch b = s.next_batch();
  const Batch expected = {{4, 39}, {4, 27}, {0, 4}, {0, 14}};
  EXPECT_EQ(b, expected);
}

void expect_error(const DatasetShape& shape, const SamplerConfig& c, const std::string& part) {
  try {
    GlobalSampler s(shape, c);
    ADD_FAILURE() << "no error; expected one containing: " << part;
  } catch (const tessera::Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr(part));
  }
}

TEST(GlobalSampler, BadInputsNameTheProblem) {
  const DatasetShape shape = test_shape();
  expect_error(shape, config(0, 10, 2, 0, 3), "global_batch 10 is not divisible by dp_size 3");
  expect_error(DatasetShape{}, config(0, 4, 1), "the dataset has no shards");
  expect_error(DatasetShape{{0, 0}}, config(0, 4, 1), "the dataset is empty (2 shards, 0 samples)");
  expect_error(shape, config(0, 289, 1),
               "global_batch 289 is larger than the dataset (288 samples in 8 shards)");
  expect_error(DatasetShape{{5, -3}}, config(0, 1, 1), "shard_sizes[1] = -3 is negative");
  expect_error(shape, config(0, 12, 1, 2, 2), "dp_rank 2 is outside [0, dp_size=2)");
  expect_error(shape, config(0, 0, 1), "global_batch must be positive, got 0");
  expect_error(shape, config(0, 12, 0), "shuffle_window must be >= 1, got 0");
  GlobalSampler s(shape, config(0, 12, 2));
  EXPECT_THROW(
      {
        try {
          s.seek(Cursor{0, 300});
        } catch (const tessera::Error& e) {
          EXPECT_THAT(e.what(), ::testing::HasSubstr("position 300 is outside [0, 288]"));
          throw;
        }
      },
      tessera::Error);
  EXPECT_THROW(s.seek(Cursor{-1, 0}), tessera::Error);
  EXPECT_THROW(s.at(0, 288), tessera::Error);
}

}  // namespace
}  // namespace tessera::data
