// The threaded Loader against an independent slow path (one ShardReader::read(i, 1) per sample
// in the test's thread): the same samples for any thread count, read-ahead depth, cache size and
// request order; each chunk read once when the cache holds them; errors name the shard and range.

#include "data_pipeline/loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"
#include "hdf5/hdf5_util.h"
#include "tests/data_pipeline/shard_fixtures.h"
#include "tests/support/hdf5_chunks.h"

namespace tessera::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

using testing_support::kLen;
using testing_support::kRes;

std::string temp_dir() {
  static const std::string dir = testing_support::fresh_test_dir("tessera_loader_test");
  return dir;
}

// Three shards of 100, 37 and 130 random samples (chunks of 16) with tokens and labels.
std::vector<std::string> write_shards() {
  static std::vector<std::string> paths;
  if (!paths.empty()) return paths;
  std::mt19937 rng(7);
  for (int s = 0; s < 3; ++s) {
    const std::string path = absl::StrCat(temp_dir(), "/shard-", s, ".h5");
    testing_support::write_random_shard(path,
                                        s == 0   ? 100
                                        : s == 1 ? 37
                                                 : 130,
                                        rng, absl::StrCat("shard ", s, " "));
    paths.push_back(path);
  }
  return paths;
}

// A fixed pseudo-random order over all samples (any function of the position will do).
SampleRef order(int64_t position) {
  const int64_t sizes[3] = {100, 37, 130}, total = 267;
  int64_t k = (position * 97 + 13) % total;
  for (int s = 0; s < 3; ++s) {
    if (k < sizes[s]) return {s, k};
    k -= sizes[s];
  }
  return {};
}

// The slow reference: one read per sample, in this thread.
void expect_equal_to_direct_reads(const SampleBatch& b, int64_t first, int64_t count) {
  static std::vector<std::unique_ptr<ShardReader>> readers;
  const auto paths = write_shards();
  if (readers.empty())
    for (const auto& p : paths) readers.push_back(std::move(*ShardReader::open(p)));
  ASSERT_EQ(b.first, first);
  ASSERT_EQ(b.count, count);
  ASSERT_EQ(b.resolution, kRes);
  ASSERT_EQ(b.token_length, kLen);
  const size_t px = kRes * kRes * 3;
  for (int64_t i = 0; i < count; ++i) {
    const SampleRef ref = order(first + i);
    auto want = readers[ref.shard]->read(ref.index, 1);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_EQ(0, std::memcmp(b.images.data() + i * px, want->images.data(), px)) << first + i;
    EXPECT_EQ(b.captions[i], want->captions[0]);
    EXPECT_EQ(b.labels[i], want->labels[0]);
    EXPECT_EQ(b.token_lengths[i], want->token_lengths[0]);
    EXPECT_TRUE(std::equal(want->tokens.begin(), want->tokens.end(), b.tokens.begin() + i * kLen));
  }
}

struct Setting {
  int threads, prefetch;
  int64_t cache_bytes;
};

class LoaderSettings : public ::testing::TestWithParam<Setting> {};

TEST_P(LoaderSettings, BatchesEqualDirectReadsInAnyRequestOrder) {
  const Setting st = GetParam();
  LoaderOptions o;
  o.threads = st.threads;
  o.prefetch_batches = st.prefetch;
  o.stride = 24;
  o.cache_bytes = st.cache_bytes;
  Loader loader(write_shards(), order, o);
  // A trainer's pattern (two micro-batches of 12 per step of 24) beyond one pass over the data,
  // then jumps back and far ahead (evaluation, resume).
  std::vector<std::pair<int64_t, int64_t>> requests;
  for (int64_t step = 0; step < 14; ++step) {
    requests.push_back({step * 24, 12});
    requests.push_back({step * 24 + 12, 12});
  }
  requests.push_back({5, 7});
  requests.push_back({1000, 30});
  requests.push_back({0, 12});
  for (auto [first, count] : requests) {
    SCOPED_TRACE(absl::StrCat("first ", first, " count ", count));
    auto b = loader.get(first, count);
    ASSERT_TRUE(b.ok()) << b.status();
    expect_equal_to_direct_reads(**b, first, count);
  }
  const LoaderStats s = loader.stats();
  if (st.prefetch > 0) {
    EXPECT_GT(s.hits, 20);  // the trainer's pattern was read ahead
  }
  if (st.cache_bytes > (int64_t(1) << 20)) {
    EXPECT_EQ(s.chunks_read, 7 + 3 + 9);  // every chunk of the 3 shards exactly once
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, LoaderSettings,
                         ::testing::Values(Setting{1, 0, int64_t(256) << 20},
                                           Setting{2, 4, int64_t(256) << 20},
                                           Setting{3, 2, 1},  // evicts every unused chunk
                                           Setting{2, 8, 8 * 16 * kRes* kRes * 3}));

TEST(Loader, TransformRunsOnTheAssembledBatch) {
  LoaderOptions o;
  o.stride = 10;
  Loader loader(write_shards(), order, o, [](SampleBatch& b) {
    b.pixels.resize(b.images.size());
    for (size_t i = 0; i < b.images.size(); ++i) b.pixels[i] = b.images[i] / 255.0f;
  });
  auto b = loader.get(20, 10);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ((*b)->pixels.size(), (*b)->images.size());
  for (size_t i = 0; i < (*b)->images.size(); ++i)
    ASSERT_FLOAT_EQ((*b)->pixels[i], (*b)->images[i] / 255.0f);
}

// More shards than a worker keeps open (64): readers are closed least recently used first and
// opened again when needed, also within one batch that spans more shards than that, and the
// samples still equal direct reads.
TEST(Loader, ManyShardsBeyondTheOpenReaderLimit) {
  constexpr int kShards = 70, kEach = 3;
  std::vector<std::string> paths;
  std::vector<std::vector<uint8_t>> images;
  for (int s = 0; s < kShards; ++s) {
    const std::string path = absl::StrCat(temp_dir(), "/many-", s, ".h5");
    ShardWriterOptions o;
    o.resolution = kRes;
    o.labels = true;
    o.image_chunk = 2;
    auto w = ShardWriter::create(path, o);
    ASSERT_TRUE(w.ok()) << w.status();
    for (int i = 0; i < kEach; ++i) {
      std::vector<uint8_t> image(kRes * kRes * 3);
      for (size_t p = 0; p < image.size(); ++p) image[p] = uint8_t(p * 3 + s * 7 + i * 11);
      ASSERT_TRUE((*w)->append({image, absl::StrCat("many ", s, " ", i), {}, s * kEach + i}).ok());
      images.push_back(image);
    }
    ASSERT_TRUE((*w)->finish().ok());
    paths.push_back(path);
  }
  // Position p: shard p % kShards, sample (p / kShards) % kEach: a batch of 70 spans all shards.
  auto many_order = [](int64_t p) {
    return SampleRef{int32_t(p % kShards), (p / kShards) % kEach};
  };
  LoaderOptions o;
  o.threads = 2;
  o.stride = kShards;
  o.cache_bytes = 1;  // every chunk evicted once unused
  Loader loader(paths, many_order, o);
  for (int64_t first : {int64_t(0), int64_t(kShards), int64_t(5), int64_t(2 * kShards)}) {
    auto b = loader.get(first, kShards);
    ASSERT_TRUE(b.ok()) << b.status();
    for (int64_t i = 0; i < kShards; ++i) {
      const SampleRef ref = many_order(first + i);
      const int64_t k = ref.shard * kEach + ref.index;
      ASSERT_EQ(0, std::memcmp((*b)->images.data() + i * kRes * kRes * 3, images[k].data(),
                               images[k].size()))
          << "position " << first + i;
      EXPECT_EQ((*b)->captions[i], absl::StrCat("many ", ref.shard, " ", ref.index));
      EXPECT_EQ((*b)->labels[i], k);
    }
  }
}

// A finite order (GlobalSampler::at throws past the epoch): reading ahead stops at its end, and
// asking past it is an error naming the positions.
TEST(Loader, FiniteOrderEndsReadAheadAndRefusesPositionsPastIt) {
  LoaderOptions o;
  o.stride = 100;
  o.prefetch_batches = 4;
  Loader loader(
      write_shards(),
      [](int64_t p) {
        TESSERA_CHECK(p < 267, "position ", p, " is past the end");
        return order(p);
      },
      o);
  auto last = loader.get(200, 67);
  ASSERT_TRUE(last.ok()) << last.status();
  expect_equal_to_direct_reads(**last, 200, 67);
  auto past = loader.get(250, 20);
  ASSERT_FALSE(past.ok());
  EXPECT_THAT(std::string(past.status().message()),
              AllOf(HasSubstr("positions [250, 270)"), HasSubstr("position 267 is past the end")));
}

TEST(Loader, MissingAndCorruptShardsNameTheFileAndRange) {
  auto paths = write_shards();
  const std::string missing = temp_dir() + "/gone.h5";
  {
    Loader loader({paths[0], missing, paths[2]}, order, {});
    // Position 0 maps to shard 0; find one in shard 1.
    int64_t p = 0;
    while (order(p).shard != 1) ++p;
    auto b = loader.get(p, 1);
    ASSERT_FALSE(b.ok());
    EXPECT_THAT(std::string(b.status().message()), HasSubstr(missing));
  }
  // Corrupt the middle of shard 2's images chunk 1 (samples [16, 32)).
  const std::string bad = temp_dir() + "/corrupt.h5";
  std::filesystem::copy_file(paths[2], bad, std::filesystem::copy_options::overwrite_existing);
  {
    const auto chunk = testing::stored_chunk(bad, "images", 1);
    ASSERT_TRUE(chunk.has_value());
    std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(chunk->address + chunk->bytes / 2);
    f.put(char(0x5a));
  }
  Loader loader({paths[0], paths[1], bad}, order, {});
  int64_t p = 0;
  while (!(order(p).shard == 2 && order(p).index >= 16 && order(p).index < 32)) ++p;
  auto b = loader.get(p, 1);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(b.status().message()),
              AllOf(HasSubstr(bad), HasSubstr("samples [16, 32)"), HasSubstr("checksum mismatch")));
  // Nothing else is lost: a sample of another chunk of the same shard still loads.
  while (!(order(p).shard == 2 && order(p).index >= 32)) ++p;
  auto good = loader.get(p, 1);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ((*good)->captions[0], absl::StrCat("shard 2 sample ", order(p).index));
}

}  // namespace
}  // namespace tessera::data
