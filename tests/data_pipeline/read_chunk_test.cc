// ShardReader::read_chunk, the loader's way of reading (raw chunks, own Fletcher32 and inflate,
// the file mapped, windows of the small datasets), against read() through HDF5's own filter
// pipeline and against libhdf5's Fletcher32: equal bytes, and corrupt chunks named.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"
#include "hdf5/hdf5_util.h"
#include "tests/data_pipeline/shard_fixtures.h"
#include "tests/support/files.h"
#include "tests/support/hdf5_chunks.h"

namespace tessera::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

using testing_support::kLen;
using testing_support::kRes;

std::string temp_dir() {
  static const std::string dir = testing_support::fresh_test_dir("tessera_read_chunk_test");
  return dir;
}

// 130 random samples (chunks of 16: 8 full, 1 partial) with tokens and labels.
std::string tokens_shard() {
  static std::string path;
  if (!path.empty()) return path;
  std::mt19937 rng(11);
  path = temp_dir() + "/tokens.h5";
  testing_support::write_random_shard(path, 130, rng, "");
  return path;
}

// libhdf5's own implementation (exported by Debian's libhdf5, declared in its private headers).
extern "C" uint32_t H5_checksum_fletcher32(const void* data, size_t len);

TEST(Fletcher32, EqualsHdf5sOwnOnEvenAndOddLengths) {
  std::mt19937 rng(3);
  std::vector<uint8_t> data(600000);  // past 2^16 words: several runs of the fast path
  for (auto& b : data) b = uint8_t(rng());
  for (size_t n : {0, 1, 2, 3, 127, 128, 129, 719, 720, 721, 722, 1441, 4999, 5000, 131071, 131072,
                   131073, 131201, 600000}) {
    EXPECT_EQ(hdf5::fletcher32(data.data(), n), H5_checksum_fletcher32(data.data(), n)) << n;
  }
  // Sums that are multiples of 65535, and all zeros.
  for (uint8_t fill : {uint8_t(0xff), uint8_t(0)}) {
    for (size_t n : {size_t(2), size_t(4096), size_t(262144), size_t(262145)}) {
      std::vector<uint8_t> same(n, fill);
      EXPECT_EQ(hdf5::fletcher32(same.data(), n), H5_checksum_fletcher32(same.data(), n))
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
  const std::string path = tokens_shard();  // 130 samples, chunks of 16, tokens and labels
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
  const std::string good = tokens_shard();  // 130 samples: images and tokens chunks of 16
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
      const uint64_t nchunks = testing::stored_chunk_count(bad, name);
      const auto chunk = testing::stored_chunk(bad, name, nchunks > 1 ? 1 : 0);
      ASSERT_TRUE(chunk.has_value()) << name;
      testing::flip_byte(bad, chunk->address + chunk->bytes / 2, 0x5a);
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

}  // namespace
}  // namespace tessera::data
