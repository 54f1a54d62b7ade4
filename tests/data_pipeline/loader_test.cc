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
#include "data_pipeline/hdf5_util.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"

namespace tessera::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int kRes = 8, kLen = 5;

std::string temp_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::path(::testing::TempDir()) /
             absl::StrCat("tessera_loader_test_", getpid());
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir.string();
}

// Three shards of 100, 37 and 130 random samples (chunks of 16) with tokens and labels.
std::vector<std::string> write_shards() {
  static std::vector<std::string> paths;
  if (!paths.empty()) return paths;
  std::mt19937 rng(7);
  for (int s = 0; s < 3; ++s) {
    const std::string path = absl::StrCat(temp_dir(), "/shard-", s, ".h5");
    ShardWriterOptions o;
    o.resolution = kRes;
    o.token_length = kLen;
    o.labels = true;
    o.image_chunk = 16;
    auto w = ShardWriter::create(path, o);
    EXPECT_TRUE(w.ok()) << w.status();
    const int n = s == 0 ? 100 : s == 1 ? 37 : 130;
    for (int i = 0; i < n; ++i) {
      std::vector<uint8_t> image(kRes * kRes * 3);
      for (auto& p : image) p = uint8_t(rng());
      std::vector<int32_t> tokens(rng() % (kLen + 1));
      for (auto& t : tokens) t = int32_t(rng() % 1000);
      const std::string caption = absl::StrCat("shard ", s, " sample ", i);
      EXPECT_TRUE((*w)->append({image, caption, tokens, int32_t(rng() % 22)}).ok());
    }
    EXPECT_TRUE((*w)->finish().ok());
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
  if (st.prefetch > 0) EXPECT_GT(s.hits, 20);  // the trainer's pattern was read ahead
  if (st.cache_bytes > (int64_t(1) << 20))
    EXPECT_EQ(s.chunks_read, 7 + 3 + 9);  // every chunk of the 3 shards exactly once
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

// libhdf5's own implementation (exported by Debian's libhdf5, declared in its private headers).
extern "C" uint32_t H5_checksum_fletcher32(const void* data, size_t len);

TEST(Fletcher32, EqualsHdf5sOwnOnEvenAndOddLengths) {
  std::mt19937 rng(3);
  std::vector<uint8_t> data(600000);  // past 2^16 words: several runs of the fast path
  for (auto& b : data) b = uint8_t(rng());
  for (size_t n : {0, 1, 2, 3, 127, 128, 129, 719, 720, 721, 722, 1441, 4999, 5000, 131071, 131072,
                   131073, 131201, 600000}) {
    EXPECT_EQ(fletcher32(data.data(), n), H5_checksum_fletcher32(data.data(), n)) << n;
  }
  // Sums that are multiples of 65535, and all zeros.
  for (uint8_t fill : {uint8_t(0xff), uint8_t(0)}) {
    for (size_t n : {size_t(2), size_t(4096), size_t(262144), size_t(262145)}) {
      std::vector<uint8_t> same(n, fill);
      EXPECT_EQ(fletcher32(same.data(), n), H5_checksum_fletcher32(same.data(), n))
          << int(fill) << " x " << n;
    }
  }
}

// read_chunk (raw chunk + own checksum + own inflate) gives what HDF5's read gives.
TEST(ReadChunk, EqualsReadForPlainAndGzipShards) {
  for (int gzip : {0, 1}) {
    const std::string path = absl::StrCat(temp_dir(), "/chunks_gz", gzip, ".h5");
    ShardWriterOptions o;
    o.resolution = kRes;
    o.labels = true;
    o.image_chunk = 16;
    o.gzip_level = gzip;
    auto w = ShardWriter::create(path, o);
    ASSERT_TRUE(w.ok()) << w.status();
    for (int i = 0; i < 70; ++i) {  // 4 full chunks and a partial one
      std::vector<uint8_t> image(kRes * kRes * 3);
      for (size_t p = 0; p < image.size(); ++p) image[p] = uint8_t(p / 3 + i * (p % 7));
      ASSERT_TRUE((*w)->append({image, absl::StrCat("caption ", i), {}, i}).ok());
    }
    ASSERT_TRUE((*w)->finish().ok());
    auto r = ShardReader::open(path);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ((*r)->image_chunk_rows(), 16);
    for (int64_t c = 0; c < 5; ++c) {
      auto got = (*r)->read_chunk(c);
      ASSERT_TRUE(got.ok()) << got.status();
      const int64_t count = std::min<int64_t>(16, 70 - c * 16);
      auto want = (*r)->read(c * 16, count);
      ASSERT_TRUE(want.ok()) << want.status();
      EXPECT_EQ(got->first, c * 16);
      EXPECT_EQ(got->count, count);
      EXPECT_EQ(got->images, want->images) << "gzip " << gzip << " chunk " << c;
      EXPECT_EQ(got->captions, want->captions);
      EXPECT_EQ(got->labels, want->labels);
    }
    EXPECT_FALSE((*r)->read_chunk(5).ok());
  }
}

// read_chunk(map) maps full uncompressed chunks (the loader's path) and gives the same images as
// read(); a partial last chunk and gzip chunks are read into memory instead (into the recycled
// buffer passed along, which is too small here and grows).
TEST(ReadChunk, MappedChunksEqualRead) {
  for (int gzip : {0, 1}) {
    const std::string path = absl::StrCat(temp_dir(), "/mapped_gz", gzip, ".h5");
    ShardWriterOptions o;
    o.resolution = kRes;
    o.image_chunk = 16;
    o.gzip_level = gzip;
    auto w = ShardWriter::create(path, o);
    ASSERT_TRUE(w.ok()) << w.status();
    for (int i = 0; i < 40; ++i) {  // 2 full chunks and a partial one
      std::vector<uint8_t> image(kRes * kRes * 3);
      for (size_t p = 0; p < image.size(); ++p) image[p] = uint8_t(p * 7 + i * 13);
      ASSERT_TRUE((*w)->append({image, absl::StrCat("caption ", i), {}, -1}).ok());
    }
    ASSERT_TRUE((*w)->finish().ok());
    auto r = ShardReader::open(path);
    ASSERT_TRUE(r.ok()) << r.status();
    for (int64_t c = 0; c < 3; ++c) {
      auto got = (*r)->read_chunk(c, ByteBuffer(100), /*map=*/true);
      ASSERT_TRUE(got.ok()) << got.status();
      const int64_t count = std::min<int64_t>(16, 40 - c * 16);
      auto want = (*r)->read(c * 16, count);
      ASSERT_TRUE(want.ok()) << want.status();
      EXPECT_EQ(bool(got->mapped_images), gzip == 0 && c < 2) << "gzip " << gzip << " chunk " << c;
      const ByteBuffer images(got->image_data(), got->image_data() + want->images.size());
      EXPECT_EQ(images, want->images) << "gzip " << gzip << " chunk " << c;
      EXPECT_EQ(got->captions, want->captions);
    }
  }
}

// read_chunk in any chunk order (its rows of captions, tokens and labels come from windows of
// whole chunks kept between calls, its tokens raw when they can be) equals read() of the rows.
TEST(ReadChunk, RowsInShuffledChunkOrderEqualRead) {
  const std::string path = write_shards()[2];  // 130 samples, chunks of 16, tokens and labels
  auto r = ShardReader::open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<int64_t> chunks = {8, 0, 3, 8, 1, 7, 2, 5, 4, 6, 0};  // 8: the partial last chunk
  for (int64_t c : chunks) {
    auto got = (*r)->read_chunk(c, ByteBuffer(), /*map=*/true);
    ASSERT_TRUE(got.ok()) << got.status();
    const int64_t count = std::min<int64_t>(16, 130 - c * 16);
    auto want = (*r)->read(c * 16, count);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_EQ(got->count, count);
    const ByteBuffer images(got->image_data(), got->image_data() + want->images.size());
    EXPECT_EQ(images, want->images) << "chunk " << c;
    EXPECT_EQ(got->captions, want->captions) << "chunk " << c;
    EXPECT_EQ(got->tokens, want->tokens) << "chunk " << c;
    EXPECT_EQ(got->token_lengths, want->token_lengths) << "chunk " << c;
    EXPECT_EQ(got->labels, want->labels) << "chunk " << c;
  }
}

// A corrupt chunk of any dataset fails read_chunk with an error naming the file, the dataset and
// the samples of the corrupt chunk.
TEST(ReadChunk, CorruptChunkOfAnyDatasetNamesFileDatasetAndSamples) {
  const std::string good = write_shards()[2];  // 130 samples: images and tokens chunks of 16
  const std::pair<const char*, const char*> cases[] = {
      {"images", "samples [16, 32)"},
      {"tokens", "samples [16, 32)"},
      {"labels", "samples [0, 130)"},
      {"token_lengths", "samples [0, 130)"},
      {"captions", "samples [0, 130)"}};  // labels, token_lengths, captions: one chunk each
  for (const auto& [name, samples] : cases) {
    const std::string bad = absl::StrCat(temp_dir(), "/corrupt_", name, ".h5");
    std::filesystem::copy_file(good, bad, std::filesystem::copy_options::overwrite_existing);
    {
      H5Handle file(H5Fopen(bad.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
      H5Handle dset(H5Dopen2(file.get(), name, H5P_DEFAULT));
      H5Handle space(H5Dget_space(dset.get()));
      hsize_t nchunks = 0;
      ASSERT_GE(H5Dget_num_chunks(dset.get(), space.get(), &nchunks), 0);
      hsize_t offset[4];
      unsigned mask = 0;
      haddr_t address = 0;
      hsize_t size = 0;
      ASSERT_GE(H5Dget_chunk_info(dset.get(), space.get(), nchunks > 1 ? 1 : 0, offset, &mask,
                                  &address, &size),
                0);
      file.reset();
      std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(address + size / 2);
      const char was = char(f.get());
      f.seekp(address + size / 2);
      f.put(char(was ^ 0x5a));
    }
    auto r = ShardReader::open(bad);
    ASSERT_TRUE(r.ok()) << r.status();
    auto got = (*r)->read_chunk(1, ByteBuffer(), /*map=*/true);
    ASSERT_FALSE(got.ok()) << name;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
    EXPECT_THAT(std::string(got.status().message()),
                AllOf(HasSubstr(bad), HasSubstr(absl::StrCat("dataset '", name, "'")),
                      HasSubstr(samples), HasSubstr("checksum mismatch")));
    // The chunk read straight (not mapped) fails the same way.
    auto again = (*r)->read_chunk(1);
    ASSERT_FALSE(again.ok()) << name;
    EXPECT_THAT(std::string(again.status().message()),
                AllOf(HasSubstr(bad), HasSubstr(absl::StrCat("dataset '", name, "'")),
                      HasSubstr("checksum mismatch")));
  }
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
    H5Handle file(H5Fopen(bad.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    H5Handle dset(H5Dopen2(file.get(), "images", H5P_DEFAULT));
    H5Handle space(H5Dget_space(dset.get()));
    hsize_t offset[4];
    unsigned mask = 0;
    haddr_t address = 0;
    hsize_t size = 0;
    ASSERT_GE(H5Dget_chunk_info(dset.get(), space.get(), 1, offset, &mask, &address, &size), 0);
    file.reset();
    std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(address + size / 2);
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
