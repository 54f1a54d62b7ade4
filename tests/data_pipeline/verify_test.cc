// Whole-shard verification (data_pipeline/shard_verify.h, `tessera inspect --verify`): a byte
// flipped in an image chunk, a caption chunk and a tokens chunk (image shard) or a text_tokens
// chunk (text shard) is each reported, naming the file, the dataset and the samples (tokens) the
// chunk holds, through both the mapped and the HDF5 read paths; an intact shard verifies; a
// manifest whose shard has a bad chunk fails, in one process and under mpirun. Format version 2:
// a flipped byte in 'image_bytes' is reported with its samples, and a file that was stored
// intact but does not decode (a truncated upload: its checksum is right) with its sample.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_verify.h"
#include "data_pipeline/shard_writer.h"
#include "data_pipeline/text_shard.h"
#include "hdf5/hdf5_util.h"
#include "tests/data_pipeline/shard_fixtures.h"
#include "tests/support/files.h"
#include "tests/support/hdf5_chunks.h"

namespace tessera::data {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_support::fresh_test_dir;

constexpr int kSamples = 100;          // image chunks of 16: 7 chunks, the last holding 4 samples
const std::string kPrefix(1000, 'x');  // ~100 KB of captions: 2 chunks of 65,536 bytes

std::string dir() {
  static const std::string d = fresh_test_dir("verify_test");
  return d;
}

std::string image_shard(const std::string& name, uint32_t seed = 7) {
  const std::string path = dir() + "/" + name;
  std::mt19937 rng(seed);
  testing_support::write_random_shard(path, kSamples, rng, kPrefix);
  return path;
}

// The file offset of the chunk of `dataset` whose first element along axis 0 is `row`.
uint64_t chunk_address(const std::string& path, const char* dataset, hsize_t row) {
  const auto chunk = testing::stored_chunk_at_row(path, dataset, row);
  TESSERA_CHECK(chunk.has_value(), path, ": no stored chunk of ", dataset, " at row ", row);
  return chunk->address + chunk->bytes / 2;  // inside the data, before the checksum
}

// The sample whose caption holds byte `b` (captions are kPrefix + "sample I").
int64_t sample_of_caption_byte(int64_t b) {
  int64_t end = 0;
  for (int64_t i = 0; i < kSamples; ++i) {
    end += int64_t(kPrefix.size() + absl::StrCat("sample ", i).size());
    if (b < end) return i;
  }
  return kSamples;
}

struct CliRun {
  int status = -1;
  std::string out;
};

// `tessera ARGS` (through `launcher` when given), stdout and stderr together.
CliRun tessera(const std::string& args, const std::string& launcher = "") {
  const std::string log = dir() + "/cli.log";
  const std::string command = absl::StrCat(launcher, launcher.empty() ? "" : " ", TESSERA_BIN, " ",
                                           args, " >", log, " 2>&1");
  const int rc = std::system(command.c_str());
  CliRun r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  std::ifstream in(log);
  std::stringstream s;
  s << in.rdbuf();
  r.out = s.str();
  return r;
}

TEST(Verify, IntactImageShardVerifiesEveryChunk) {
  const std::string path = image_shard("intact.h5");
  for (bool map : {true, false}) {
    const ShardVerifyResult r = verify_shard(path, "", map);
    EXPECT_TRUE(r.ok()) << r.bad[0];
    EXPECT_EQ(r.kind, "images");
    // images 7, captions 2, caption_offsets 1, tokens 7, token_lengths 1, labels 1.
    EXPECT_EQ(r.chunks, 19) << "map " << map;
  }
  const CliRun run = tessera("inspect --verify " + path);
  EXPECT_EQ(run.status, 0) << run.out;
  EXPECT_THAT(run.out, HasSubstr("0 problems in 0 shards"));
}

TEST(Verify, EachFlippedChunkIsReportedWithDatasetAndSamples) {
  const std::string path = image_shard("flipped.h5");
  testing::flip_byte(path, chunk_address(path, "images", 32), 0x10);  // samples [32, 48)
  testing::flip_byte(path, chunk_address(path, "captions", 65536), 0x01);
  testing::flip_byte(path, chunk_address(path, "tokens", 64), 0x40);  // samples [64, 80)
  const std::string captions = absl::StrCat("dataset 'captions', samples [",
                                            sample_of_caption_byte(65536), ", ", kSamples, ")");
  for (bool map : {true, false}) {
    SCOPED_TRACE(map ? "mapped" : "through HDF5");
    const ShardVerifyResult r = verify_shard(path, "", map);
    EXPECT_EQ(r.chunks, 19);  // the bad ones included: verification went on past them
    ASSERT_EQ(r.bad.size(), 3u);
    EXPECT_THAT(r.bad[0], AllOf(HasSubstr(path), HasSubstr("dataset 'images', samples [32, 48)"),
                                HasSubstr("checksum mismatch")));
    EXPECT_THAT(r.bad[1], AllOf(HasSubstr(path), HasSubstr(captions), HasSubstr("checksum")));
    EXPECT_THAT(r.bad[2], AllOf(HasSubstr(path), HasSubstr("dataset 'tokens', samples [64, 80)"),
                                HasSubstr("checksum")));
  }
  const CliRun run = tessera("inspect --verify " + path);
  EXPECT_EQ(run.status, 1) << run.out;
  EXPECT_THAT(run.out, AllOf(HasSubstr("dataset 'images', samples [32, 48)"), HasSubstr(captions),
                             HasSubstr("dataset 'tokens', samples [64, 80)"),
                             HasSubstr("3 problems in 1 shard")));
}

// Format version 2: 40 JPEGs of 48 x 64 in 'image_bytes' chunks of 256 KiB (one chunk, as the
// files are ~2 KB), sample 17 truncated to half its bytes before it was written.
std::string encoded_shard(const std::string& name, int64_t truncated_sample) {
  const std::string path = dir() + "/" + name;
  ShardWriterOptions o;
  o.format_version = shard::kEncodedVersion;
  o.resolution = 0;
  auto w = ShardWriter::create(path, o);
  EXPECT_TRUE(w.ok()) << w.status();
  std::mt19937 rng(3);
  for (int64_t i = 0; i < 40; ++i) {
    RgbImage image{48, 64, std::vector<uint8_t>(48 * 64 * 3)};
    for (size_t p = 0; p < image.pixels.size(); ++p) image.pixels[p] = uint8_t(p / 7 + rng() % 9);
    auto jpeg = encode_jpeg(image, 90);
    EXPECT_TRUE(jpeg.ok()) << jpeg.status();
    if (i == truncated_sample) jpeg->resize(jpeg->size() / 2);
    const std::string caption = absl::StrCat("sample ", i);
    SampleToWrite t;
    t.caption = caption;
    t.encoded = *jpeg;
    t.height = t.original_height = 48, t.width = t.original_width = 64;
    EXPECT_TRUE((*w)->append(t).ok());
  }
  EXPECT_TRUE((*w)->finish().ok());
  return path;
}

TEST(Verify, EncodedShardChecksEveryChunkAndDecodesEveryImage) {
  const ShardVerifyResult intact = verify_shard(encoded_shard("encoded.h5", -1));
  EXPECT_TRUE(intact.ok()) << intact.bad[0];
  EXPECT_EQ(intact.images, 40);

  const std::string truncated = encoded_shard("truncated.h5", 17);
  const ShardVerifyResult r = verify_shard(truncated);
  ASSERT_EQ(r.bad.size(), 1u);
  EXPECT_THAT(r.bad[0], AllOf(HasSubstr(truncated), HasSubstr("'image_bytes', sample 17")));
  const CliRun run = tessera("inspect --verify " + truncated);
  EXPECT_EQ(run.status, 1) << run.out;
  EXPECT_THAT(run.out,
              AllOf(HasSubstr("'image_bytes', sample 17"), HasSubstr("1 problem in 1 shard")));

  const std::string flipped = encoded_shard("encoded_flipped.h5", -1);
  testing::flip_byte(flipped, chunk_address(flipped, "image_bytes", 0), 0x08);
  for (bool map : {true, false}) {
    const ShardVerifyResult f = verify_shard(flipped, "", map);
    ASSERT_EQ(f.bad.size(), 1u) << "map " << map;  // a bad chunk: its images are not decoded
    EXPECT_THAT(f.bad[0],
                AllOf(HasSubstr("dataset 'image_bytes', samples [0, 40)"), HasSubstr("checksum")));
  }
}

TEST(Verify, TokenLengthOutsideItsRangeIsReported) {
  // A length the checksum cannot catch (written by a faulty packer): stored as is, with a valid
  // Fletcher32. Rewrite one token_lengths entry through HDF5.
  const std::string path = image_shard("lengths.h5");
  {
    hdf5::H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    hdf5::H5Handle dset(H5Dopen2(file.get(), "token_lengths", H5P_DEFAULT));
    hdf5::H5Handle space(H5Dget_space(dset.get()));
    const hsize_t at = 70, one = 1;
    const int32_t bad = testing_support::kLen + 3;
    hdf5::H5Handle mem(H5Screate_simple(1, &one, nullptr));
    H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &at, nullptr, &one, nullptr);
    ASSERT_GE(H5Dwrite(dset.get(), H5T_NATIVE_INT32, mem.get(), space.get(), H5P_DEFAULT, &bad), 0);
  }
  for (bool map : {true, false}) {
    const ShardVerifyResult r = verify_shard(path, "", map);
    ASSERT_EQ(r.bad.size(), 1u) << "map " << map;
    EXPECT_THAT(r.bad[0], AllOf(HasSubstr("dataset 'token_lengths', sample 70"),
                                HasSubstr("outside [0, 5]")));
  }
}

TEST(Verify, TextShardChunkIsReportedWithItsTokens) {
  const std::string path = dir() + "/text.h5";
  std::vector<int32_t> tokens(140000);  // 3 chunks of 65,536
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i % 5003);
  ASSERT_TRUE(write_text_shard(path, tokens, "", 2).ok());
  EXPECT_TRUE(verify_shard(path).ok());
  testing::flip_byte(path, chunk_address(path, kTextTokens, 65536), 0x08);
  const ShardVerifyResult r = verify_shard(path);
  EXPECT_EQ(r.kind, "text");
  EXPECT_EQ(r.chunks, 3);
  ASSERT_EQ(r.bad.size(), 1u);
  EXPECT_THAT(r.bad[0], AllOf(HasSubstr(path),
                              HasSubstr("dataset 'text_tokens', tokens [65536, "
                                        "131072)"),
                              HasSubstr("checksum")));
  const CliRun run = tessera("inspect --verify " + path);
  EXPECT_EQ(run.status, 1) << run.out;
  EXPECT_THAT(run.out, HasSubstr("dataset 'text_tokens', tokens [65536, 131072)"));
}

TEST(Verify, UnreadableShardIsReportedAndTheOthersStillVerified) {
  const std::string good = image_shard("good_neighbour.h5");
  const std::string cut = dir() + "/cut.h5";
  fs::copy_file(good, cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, 4000);
  const CliRun run = tessera(absl::StrCat("inspect --verify ", cut, " ", good));
  EXPECT_EQ(run.status, 1) << run.out;
  EXPECT_THAT(run.out, AllOf(HasSubstr("BAD  " + cut + " (unreadable"), HasSubstr("ok   " + good),
                             HasSubstr("2 shards")));
}

// A manifest of three shards (num_samples and content hashes as pack writes them); the shard
// `corrupt` then gets a flipped byte in its image chunk 5 (samples [80, 96)).
std::string manifest(const std::string& name, int corrupt) {
  const std::string sub = dir() + "/" + name;
  fs::create_directories(sub);
  Manifest m;
  m.set_format_version(1);
  m.set_resolution(testing_support::kRes);
  m.set_token_length(testing_support::kLen);
  m.set_split("train");
  for (int i = 0; i < 3; ++i) {
    const std::string file = absl::StrCat("train-", i, ".h5");
    std::mt19937 rng(100 + i);
    testing_support::write_random_shard(sub + "/" + file, kSamples, rng, kPrefix);
    ShardInfo* s = m.add_shards();
    s->set_path(file);
    s->set_num_samples(kSamples);
    s->set_bytes(int64_t(fs::file_size(sub + "/" + file)));
    s->set_content_hash(*file_content_hash(sub + "/" + file));
  }
  m.set_num_samples(3 * kSamples);
  EXPECT_TRUE(write_manifest(m, sub + "/train.pbtxt").ok());
  if (corrupt >= 0) {
    const std::string victim = absl::StrCat(sub, "/train-", corrupt, ".h5");
    testing::flip_byte(victim, chunk_address(victim, "images", 80), 0x02);
  }
  return sub + "/train.pbtxt";
}

TEST(Verify, ManifestWithABadShardChunkFailsInOneProcessAndUnderMpirun) {
  const std::string good = manifest("good", -1), bad = manifest("bad", 1);
  const std::string victim = dir() + "/bad/train-1.h5";
  const std::string mpirun = "mpirun --oversubscribe -np 2";
  for (const std::string& launcher : {std::string(), mpirun}) {
    SCOPED_TRACE(launcher.empty() ? "one process" : launcher);
    CliRun run = tessera("inspect --verify " + good, launcher);
    EXPECT_EQ(run.status, 0) << run.out;
    EXPECT_THAT(run.out, HasSubstr("3 shards, 57 chunks"));
    run = tessera("inspect --verify " + bad, launcher);
    EXPECT_NE(run.status, 0) << run.out;
    EXPECT_THAT(run.out, AllOf(HasSubstr("BAD  " + victim), HasSubstr(victim + ": content hash"),
                               HasSubstr(victim + ": dataset 'images', samples [80, 96)"),
                               HasSubstr("ok   " + dir() + "/bad/train-2.h5"),
                               HasSubstr("2 problems in 1 shard")));
  }
  // Under mpirun the shards are shared out: rank 1 verifies train-1 (shard i on rank i mod 2).
  const CliRun run = tessera("inspect --verify " + bad, mpirun);
  EXPECT_THAT(run.out, HasSubstr("on 2 ranks"));
}

}  // namespace
}  // namespace tessera::data
