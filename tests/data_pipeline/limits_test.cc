// Limits at load (data_pipeline/shard_format.h, tar_input.cc): a shard whose resolution,
// sample count, caption length, token length or chunk shape would make a reader allocate without
// bound is refused at open with an error naming the file and the attribute or dataset; a tar
// member whose declared size is over its limit, or past the end of the file, is refused before
// it is read; pack refuses a resolution or context a reader would refuse.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_format.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"
#include "data_pipeline/tar_input.h"
#include "hdf5/hdf5_util.h"
#include "tests/data_pipeline/shard_fixtures.h"

namespace tessera::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_support::fresh_test_dir;

std::string dir() {
  static const std::string d = fresh_test_dir("limits_test");
  return d;
}

std::string small_shard(const std::string& name) {
  const std::string path = dir() + "/" + name;
  std::mt19937 rng(3);
  testing_support::write_random_shard(path, 20, rng, "");
  return path;
}

void set_int_attribute(const std::string& path, const char* name, int64_t value) {
  hdf5::H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
  hdf5::H5Handle attr(H5Aopen(file.get(), name, H5P_DEFAULT));
  ASSERT_GE(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), 0);
}

std::string open_error(const std::string& path) {
  auto r = ShardReader::open(path);
  EXPECT_FALSE(r.ok()) << path;
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(Limits, ShardResolutionOverThePixelLimitIsRefused) {
  const std::string path = small_shard("resolution.h5");
  set_int_attribute(path, "resolution", 16385);  // 16385^2 > 16384^2
  EXPECT_THAT(open_error(path),
              AllOf(HasSubstr(path), HasSubstr("file attribute 'resolution' 16385 exceeds the "
                                               "limit of 268435456 pixels")));
}

TEST(Limits, ShardSampleCountOverTheLimitIsRefused) {
  const std::string path = small_shard("samples.h5");
  set_int_attribute(path, "num_samples", shard::kMaxSamples + 1);
  EXPECT_THAT(open_error(path),
              AllOf(HasSubstr(path), HasSubstr(absl::StrCat("file attribute 'num_samples' ",
                                                            shard::kMaxSamples + 1, " exceeds"))));
}

TEST(Limits, CaptionOverTheLimitIsRefusedNamingTheSample) {
  const std::string path = dir() + "/caption.h5";
  ShardWriterOptions o;
  o.resolution = 4;
  auto w = ShardWriter::create(path, o);
  ASSERT_TRUE(w.ok());
  const std::vector<uint8_t> px(48, 9);
  const std::string fits(shard::kMaxCaptionBytes, 'a'), over(shard::kMaxCaptionBytes + 1, 'b');
  ASSERT_TRUE((*w)->append({px, fits, {}, 0}).ok());
  ASSERT_TRUE((*w)->append({px, over, {}, 0}).ok());  // the writer does not judge
  ASSERT_TRUE((*w)->finish().ok());
  EXPECT_THAT(open_error(path),
              AllOf(HasSubstr(path), HasSubstr("dataset 'caption_offsets' gives sample 1 a "
                                               "caption of 1048577 bytes, over the limit")));
}

TEST(Limits, TokenLengthOverTheLimitIsRefused) {
  const std::string path = dir() + "/tokens.h5";
  ShardWriterOptions o;
  o.resolution = 4;
  o.token_length = shard::kMaxTokenLength + 1;
  o.image_chunk = 1;
  auto w = ShardWriter::create(path, o);
  ASSERT_TRUE(w.ok());
  const std::vector<uint8_t> px(48, 9);
  const std::vector<int32_t> tokens = {5, 6};
  ASSERT_TRUE((*w)->append({px, "c", tokens, 0}).ok());
  ASSERT_TRUE((*w)->finish().ok());
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("dataset 'tokens' has token "
                                                                 "length 65537, over the limit")));
}

TEST(Limits, ChunkOverTheLimitIsRefused) {
  // No sample is written, so the declared 3 GiB chunk costs nothing here; a reader would have
  // to allocate it whole.
  const std::string path = dir() + "/chunk.h5";
  ShardWriterOptions o;
  o.resolution = 32;
  o.image_chunk = int64_t{1} << 20;  // 1 Mi samples of 3 KiB
  auto w = ShardWriter::create(path, o);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->finish().ok());
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("dataset 'images' has chunks of"),
                                      HasSubstr("over the limit of 1073741824")));
}

TEST(Limits, PackRefusesWhatAReaderWouldRefuse) {
  PackOptions o;
  o.index_path = dir() + "/none.jsonl";
  o.out_dir = dir() + "/pack";
  o.resolution = 16385;
  EXPECT_THAT(std::string(pack_images(o).status().message()),
              HasSubstr("resolution 16385 exceeds the limit"));
}

// One tar member header (ustar), its checksum filled in.
std::string tar_header(const std::string& name, uint64_t size, char type) {
  std::string h(512, '\0');
  std::memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 99));
  std::snprintf(h.data() + 100, 8, "%07o", 0644);
  std::snprintf(h.data() + 124, 12, "%011llo", (unsigned long long)size);
  h[156] = type;
  std::memcpy(h.data() + 257,
              "ustar\0"
              "00",
              8);
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (char c : h) sum += uint8_t(c);
  std::snprintf(h.data() + 148, 8, "%06o", sum);
  return h;
}

std::string tar_error(const std::string& name, const std::string& bytes) {
  const std::string path = dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  auto r = read_webdataset_tar(path);
  EXPECT_FALSE(r.ok()) << name;
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(Limits, TarLongNameOverTheLimitIsRefusedBeforeReadingIt) {
  const uint64_t size = (uint64_t{1} << 20) + 1;
  const std::string e = tar_error(
      "long_name.tar", tar_header("././@LongLink", size, 'L') + std::string(size + 2048, 'n'));
  EXPECT_THAT(e, AllOf(HasSubstr("long_name.tar"), HasSubstr("field 'size' 1048577 exceeds the "
                                                             "limit of 1048576")));
}

TEST(Limits, TarMemberPastTheEndOfTheFileIsRefusedBeforeAllocating) {
  // 512 MiB declared (under the member limit), 1 KiB present: refused as truncated without a
  // 512 MiB buffer.
  const std::string e = tar_error(
      "short.tar", tar_header("a/0001.png", uint64_t{1} << 29, '0') + std::string(1024, 'x'));
  EXPECT_THAT(e, AllOf(HasSubstr("short.tar"), HasSubstr("member 'a/0001.png' truncated"),
                       HasSubstr("field 'size' 536870912")));
}

TEST(Limits, TarMemberOverTheLimitIsRefused) {
  // 2 GiB declared and present (a sparse file): over the 1 GiB member limit.
  const std::string path = dir() + "/big_member.tar";
  {
    std::ofstream f(path, std::ios::binary);
    f << tar_header("a/0001.png", uint64_t{2} << 30, '0');
  }
  std::filesystem::resize_file(path, 512 + (uint64_t{2} << 30) + 1024);
  auto r = read_webdataset_tar(path);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              AllOf(HasSubstr(path), HasSubstr("field 'size' 2147483648 exceeds the limit")));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace tessera::data
