// GradSync on 2 and 4 ranks (ctest distributed_grad_sync_test and _np4): after finish() the
// buffer equals the plain DP average for bucket sizes from one element to larger than the
// buffer, with every rank reporting its own arbitrary growing prefixes; accumulation with
// set_enabled(false) syncs only the last micro-batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "distributed/grad_sync.h"
#include "tests/distributed/mpi_test_env.h"

namespace tessera::distributed {
namespace {

using testing::value_of;

void fill(const Tensor& g, int rank, float times = 1) {
  float* p = g.data<float>();
  for (int64_t i = 0; i < g.numel(); ++i) p[i] = times * value_of(rank, i);
}

float average(int size, int64_t i, float times = 1) {
  float sum = 0;
  for (int r = 0; r < size; ++r) sum += times * value_of(r, i);
  return sum / float(size);
}

int64_t count_wrong(const Tensor& g, int size, float times = 1) {
  int64_t bad = 0;
  for (int64_t i = 0; i < g.numel(); ++i) bad += g.data<float>()[i] != average(size, i, times);
  return bad;
}

// Reports growing prefixes in random steps (different on every rank), sometimes repeating one,
// sometimes stopping short of N (finish() must launch the rest).
void run_backward(GradSync& sync, int64_t n, std::mt19937& rng) {
  int64_t ready = 0;
  std::uniform_int_distribution<int> coin(0, 9);
  while (ready < n) {
    int c = coin(rng);
    if (c == 0) break;  // stop short
    if (c == 1) {
      sync.on_ready(ready);  // repeated prefix
      continue;
    }
    std::uniform_int_distribution<int64_t> step(1, std::max<int64_t>(1, n / 5));
    ready = std::min(n, ready + step(rng));
    sync.on_ready(ready);
  }
}

TEST(GradSync, EqualsPlainAverageForManyBucketSizes) {
  auto world = testing::test_world();
  const int S = world->size(), R = world->rank();
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(300007)}) {
    for (int64_t bucket_bytes : {int64_t(4), int64_t(28), int64_t(4000), int64_t(400000), 4 * n,
                                 4 * n + 400, GradSync::kDefaultBucketBytes}) {
      // Tiny buckets on the large buffer would be ~10^5 all-reduces: minutes, nothing new.
      if (bucket_bytes < 4000 && n > 1000) continue;
      SCOPED_TRACE("n " + std::to_string(n) + " bucket_bytes " + std::to_string(bucket_bytes));
      Tensor g = Tensor::empty({n}, DType::f32);
      GradSync sync(*world, g, bucket_bytes);
      EXPECT_EQ(sync.num_buckets(), (n + sync.bucket_elements() - 1) / sync.bucket_elements());
      std::mt19937 rng(1234 + 17 * R + int(bucket_bytes % 1000));
      for (int step = 0; step < 2; ++step) {
        fill(g, R);
        run_backward(sync, n, rng);
        sync.finish();
        EXPECT_EQ(count_wrong(g, S), 0) << "step " << step;
        EXPECT_EQ(sync.launched_buckets(), 0);  // next round starts fresh
      }
      EXPECT_EQ(sync.stats().syncs, 2);
      EXPECT_EQ(sync.stats().buckets, 2 * sync.num_buckets());
      EXPECT_EQ(sync.stats().bytes, 2 * 4 * n);
      EXPECT_GT(sync.stats().comm_seconds, 0);
      EXPECT_GE(sync.stats().hidden_fraction(), 0);
      EXPECT_LE(sync.stats().hidden_fraction(), 1);
    }
  }
}

TEST(GradSync, AccumulationSyncsOnlyTheLastMicroBatch) {
  auto world = testing::test_world();
  const int S = world->size(), R = world->rank();
  const int64_t n = 5003;
  Tensor g = Tensor::zeros({n}, DType::f32);
  GradSync sync(*world, g, 4 * 1000);
  const int64_t seq_before = world->last_sequence();
  std::mt19937 rng(99 + R);
  for (int micro = 0; micro < 3; ++micro) {
    sync.set_enabled(micro == 2);
    float* p = g.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] += value_of(R, i);  // backward accumulates
    run_backward(sync, n, rng);
    if (micro < 2) {
      EXPECT_EQ(sync.launched_buckets(), 0);
    }
    sync.finish();
    if (micro < 2) {
      EXPECT_EQ(world->last_sequence(), seq_before) << "disabled sync communicated";
    }
  }
  EXPECT_EQ(count_wrong(g, S, 3.0f), 0);
  EXPECT_EQ(sync.stats().syncs, 1);
  EXPECT_EQ(world->last_sequence(), seq_before + sync.num_buckets());
}

TEST(GradSync, PrefixGoingBackwardsIsAnError) {
  auto world = testing::test_world();
  Tensor g = Tensor::zeros({100}, DType::f32);
  GradSync sync(*world, g, 4 * 10);
  sync.on_ready(50);
  EXPECT_THROW(sync.on_ready(40), Error);
  EXPECT_THROW(sync.on_ready(101), Error);
  EXPECT_THROW(sync.set_enabled(false), Error);  // mid-backward
  sync.finish();                                 // keeps the ranks in step
}

// ZeRO-1 mode: each rank's shard buffer holds the average of its 1/dp of every bucket (padded last
// bucket included); the full buffer keeps the local gradients; the shards tile the buffer.
TEST(GradSync, ReduceScatterModeFillsThisRanksShards) {
  auto world = testing::test_world();
  const int S = world->size(), R = world->rank();
  for (int64_t n : {int64_t(1), int64_t(1001), int64_t(300007)}) {
    for (int64_t bucket_bytes : {int64_t(4), int64_t(28), int64_t(4000), 4 * n + 400}) {
      if (bucket_bytes < 4000 && n > 1001) continue;
      SCOPED_TRACE("n " + std::to_string(n) + " bucket_bytes " + std::to_string(bucket_bytes));
      const ZeroShards shards(n, bucket_bytes, S, R);
      EXPECT_EQ(shards.bucket_elements % S, 0);
      Tensor g = Tensor::empty({n}, DType::f32);
      Tensor shard = Tensor::empty({shards.shard_numel}, DType::f32);
      GradSync sync(*world, g, shards, shard);
      EXPECT_TRUE(sync.reduce_scatter());
      EXPECT_EQ(sync.num_buckets(), int64_t(shards.buckets.size()));
      std::mt19937 rng(77 + 13 * R + int(bucket_bytes % 1000));
      for (int step = 0; step < 2; ++step) {
        fill(g, R, float(step + 1));
        run_backward(sync, n, rng);
        sync.finish();
        int64_t bad = 0, local_bad = 0;
        for (const auto& b : shards.buckets) {
          for (int64_t i = b.own_begin; i < b.own_end; ++i) {
            bad +=
                shard.data<float>()[b.offset + (i - b.own_begin)] != average(S, i, float(step + 1));
          }
        }
        for (int64_t i = 0; i < n; ++i) {
          local_bad += g.data<float>()[i] != float(step + 1) * value_of(R, i);
        }
        EXPECT_EQ(bad, 0) << "step " << step;
        EXPECT_EQ(local_bad, 0) << "the full buffer changed";
      }
      EXPECT_EQ(sync.stats().buckets, 2 * sync.num_buckets());
      EXPECT_EQ(sync.stats().bytes, 2 * 4 * n);
      // Every element belongs to exactly one rank.
      Tensor owned = Tensor::zeros({n}, DType::f32);
      for (const auto& b : shards.buckets) {
        for (int64_t i = b.own_begin; i < b.own_end; ++i) owned.data<float>()[i] = 1;
      }
      world->all_reduce(owned, ReduceOp::kSum)->wait();
      int64_t not_once = 0;
      for (int64_t i = 0; i < n; ++i) not_once += owned.data<float>()[i] != 1.0f;
      EXPECT_EQ(not_once, 0);
    }
  }
}

// ZeRO-3's layout (ZeroShards cut at given segment boundaries, the gather units): no bucket
// crosses a cut and a segment's last bucket may be padded inside the buffer. Through gradient
// staging with two micro-batches, and the last segment's gradient reduced early in part
// (GradSync::reduce_partial, parallel.reduce_tied_grad_early: given before backward, the rest of
// it, zeros here, through `take`), every shard element is exactly the sum over the micro-batches
// of the rank average (integers over a power-of-two dp: exact), padding stays zero.
TEST(GradSync, StagedShardsCutAtSegmentsWithAPartialReduction) {
  auto world = testing::test_world();
  const int S = world->size(), R = world->rank();
  const int64_t n = 1001, partial_begin = 700;
  const std::vector<int64_t> cuts = {0, 3, 250, 251, partial_begin};
  for (int64_t bucket_bytes : {int64_t(4), int64_t(4 * 40), int64_t(4 * 1000)}) {
    SCOPED_TRACE("bucket_bytes " + std::to_string(bucket_bytes));
    const ZeroShards shards(n, bucket_bytes, S, R, cuts);
    int64_t partial_elements = 0;
    for (const auto& b : shards.buckets) {
      const auto next = std::upper_bound(cuts.begin(), cuts.end(), b.begin);
      const int64_t segment_end = next == cuts.end() ? n : *next;
      EXPECT_LE(b.end, segment_end) << "bucket [" << b.begin << ", " << b.end << ")";
      if (b.padded(S)) EXPECT_EQ(b.end, segment_end) << "padded inside a segment";
      if (b.end > partial_begin) partial_elements += b.end - b.begin;
    }
    Tensor g = Tensor::empty({n}, DType::f32);
    Tensor shard = Tensor::zeros({shards.shard_numel}, DType::f32);
    GradSync sync(
        *world,
        [&](int64_t begin, int64_t end, const Tensor& dst) {
          for (int64_t i = begin; i < end; ++i) {
            dst.data<float>()[i - begin] = i < partial_begin ? g.data<float>()[i] : 0.0f;
          }
        },
        Device::cpu(), shards, shard);
    std::mt19937 rng(5 + 7 * R);
    for (int mb = 0; mb < 2; ++mb) {
      fill(g, R, float(mb + 1));
      sync.begin_micro_batch(mb, 2);
      Tensor part = Tensor::empty({n - partial_begin}, DType::f32);
      copy(g.flat_view(partial_begin, {n - partial_begin}), part);
      sync.reduce_partial(partial_begin, part);
      run_backward(sync, n, rng);
      sync.finish();
    }
    int64_t bad = 0, bad_padding = 0;
    for (const auto& b : shards.buckets) {
      for (int64_t k = 0; k < b.shard; ++k) {
        const float got = shard.data<float>()[b.offset + k];
        const int64_t i = b.own_begin + k;
        if (k < b.own()) {
          bad += got != average(S, i, 1) + average(S, i, 2);
        } else {
          bad_padding += got != 0.0f;
        }
      }
    }
    EXPECT_EQ(bad, 0);
    EXPECT_EQ(bad_padding, 0);
    EXPECT_EQ(sync.stats().partial_bytes, 2 * 4 * partial_elements);
    EXPECT_EQ(sync.stats().bytes, 2 * 4 * n);
  }
}

}  // namespace
}  // namespace tessera::distributed
