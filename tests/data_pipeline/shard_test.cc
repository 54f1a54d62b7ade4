// Shard format round trips (tessera <-> tessera, tessera <-> h5py) and every bad-input path of
// the reader with its message: missing, truncated, corrupt chunk, wrong schema, disagreeing
// counts.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"
#include "tests/support/files.h"
#include "tests/support/hdf5_chunks.h"
#include "tests/support/reference.h"

namespace tessera::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

struct Sample {
  std::vector<uint8_t> image;
  std::string caption;
  std::vector<int32_t> tokens;
  int32_t label = 0;
};

// A fresh directory per process, so reruns and concurrent runs never see each other's shards.
std::string temp_file(const std::string& name) {
  static const std::filesystem::path dir = [] {
    auto d =
        std::filesystem::path(::testing::TempDir()) / absl::StrCat("tessera_shard_test_", getpid());
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d;
  }();
  return (dir / name).string();
}

// Random pixels; captions of 0..40 characters, some multi-byte UTF-8, some empty; 0..L tokens.
std::vector<Sample> make_samples(int n, int resolution, int token_length, uint32_t seed) {
  std::mt19937 rng(seed);
  const char* pieces[] = {"a", "cat", " ", "é", "猫", "🐈", "\n", "z"};
  std::vector<Sample> samples(n);
  for (Sample& s : samples) {
    s.image.resize(resolution * resolution * 3);
    for (uint8_t& p : s.image) p = static_cast<uint8_t>(rng());
    for (int k = rng() % 41; k > 0; --k) s.caption += pieces[rng() % 8];
    s.tokens.resize(token_length > 0 ? rng() % (token_length + 1) : 0);
    for (int32_t& t : s.tokens) t = static_cast<int32_t>(rng() % 50000) + 1;
    s.label = static_cast<int32_t>(rng() % 1000) - 3;
  }
  return samples;
}

ShardWriterOptions options_for(int resolution, int token_length, bool labels) {
  ShardWriterOptions o;
  o.resolution = resolution;
  o.token_length = token_length;
  o.labels = labels;
  o.tokenizer = token_length > 0 ? "sentencepiece:test-model" : "";
  return o;
}

void write_shard(const std::string& path, const std::vector<Sample>& samples,
                 const ShardWriterOptions& options) {
  auto writer = ShardWriter::create(path, options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (const Sample& s : samples)
    ASSERT_TRUE((*writer)->append({s.image, s.caption, s.tokens, s.label}).ok());
  absl::Status st = (*writer)->finish();
  ASSERT_TRUE(st.ok()) << st;
}

// The read range equals samples [first, first + count) exactly, padding included.
void expect_samples(const ShardSamples& got, const std::vector<Sample>& want, int64_t first,
                    int64_t count, int token_length, bool labels) {
  ASSERT_EQ(got.first, first);
  ASSERT_EQ(got.count, count);
  ASSERT_EQ(got.captions.size(), static_cast<size_t>(count));
  const size_t image_bytes = want.empty() ? 0 : want[0].image.size();
  ASSERT_EQ(got.images.size(), count * image_bytes);
  ASSERT_EQ(got.tokens.size(), static_cast<size_t>(count * token_length));
  ASSERT_EQ(got.labels.size(), labels ? static_cast<size_t>(count) : 0u);
  for (int64_t i = 0; i < count; ++i) {
    const Sample& w = want[first + i];
    ASSERT_EQ(0, std::memcmp(got.images.data() + i * image_bytes, w.image.data(), image_bytes))
        << "image of sample " << first + i;
    ASSERT_EQ(got.captions[i], w.caption) << "sample " << first + i;
    if (token_length > 0) {
      ASSERT_EQ(got.token_lengths[i], static_cast<int32_t>(w.tokens.size()));
      std::vector<int32_t> padded = w.tokens;
      padded.resize(token_length, 0);
      std::vector<int32_t> row(got.tokens.begin() + i * token_length,
                               got.tokens.begin() + (i + 1) * token_length);
      ASSERT_EQ(row, padded) << "tokens of sample " << first + i;
    }
    if (labels) {
      ASSERT_EQ(got.labels[i], w.label);
    }
  }
}

std::string error_of(const std::string& path) {
  auto reader = ShardReader::open(path);
  EXPECT_FALSE(reader.ok()) << path << " opened";
  return reader.ok() ? "" : std::string(reader.status().message());
}

void run_python(const std::string& args) {
  const char* py = std::getenv("TESSERA_PYTHON");
  std::string cmd = absl::StrCat(py != nullptr ? py : "/usr/bin/python3", " ",
                                 testing::source_path("tests/reference/shard_h5py.py"), " ", args);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(Shard, RoundTripGivesBackEverySampleAndAnySubRange) {
  const int n = 150, r = 8, l = 12;  // 150: the last image chunk is partial
  auto samples = make_samples(n, r, l, 1);
  std::string path = temp_file("rt.h5");
  auto writer = ShardWriter::create(path, options_for(r, l, true));
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (const Sample& s : samples)
    ASSERT_TRUE((*writer)->append({s.image, s.caption, s.tokens, s.label}).ok());
  // Only PATH.tmp exists until finish(): a shard appears complete or not at all.
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::exists(path + ".tmp"));
  ASSERT_TRUE((*writer)->finish().ok());
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  auto reader = ShardReader::open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ShardReader& rd = **reader;
  EXPECT_EQ(rd.num_samples(), n);
  EXPECT_EQ(rd.resolution(), r);
  EXPECT_EQ(rd.token_length(), l);
  EXPECT_TRUE(rd.has_labels());
  EXPECT_EQ(rd.tokenizer(), "sentencepiece:test-model");
  EXPECT_EQ(rd.format_version(), 1);
  auto all = rd.read(0, n);
  ASSERT_TRUE(all.ok()) << all.status();
  expect_samples(*all, samples, 0, n, l, true);

  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    int64_t first = rng() % (n + 1), count = rng() % (n - first + 1);
    auto part = rd.read(first, count);
    ASSERT_TRUE(part.ok()) << part.status();
    expect_samples(*part, samples, first, count, l, true);
  }
  auto outside = rd.read(140, 11);
  ASSERT_FALSE(outside.ok());
  EXPECT_THAT(std::string(outside.status().message()),
              AllOf(HasSubstr(path), HasSubstr("samples [140, 151) outside [0, 150)")));
}

TEST(Shard, OptionalDatasetsAbsentAndGzipOptionRoundTrip) {
  const int n = 70, r = 5;
  auto samples = make_samples(n, r, 0, 2);
  ShardWriterOptions o = options_for(r, 0, false);
  o.gzip_level = 1;
  o.image_chunk = 16;
  std::string path = temp_file("plain.h5");
  write_shard(path, samples, o);
  auto reader = ShardReader::open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->token_length(), 0);
  EXPECT_FALSE((*reader)->has_labels());
  EXPECT_EQ((*reader)->tokenizer(), "");
  auto got = (*reader)->read(3, 60);
  ASSERT_TRUE(got.ok()) << got.status();
  expect_samples(*got, samples, 3, 60, 0, false);

  std::string empty = temp_file("empty.h5");  // a shard of no samples is valid
  write_shard(empty, {}, options_for(r, 4, true));
  auto e = ShardReader::open(empty);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)->num_samples(), 0);
  EXPECT_TRUE((*e)->read(0, 0).ok());
}

// The manifest's content hash relies on this: no timestamps or other run-dependent bytes.
TEST(Shard, EqualContentGivesByteEqualFiles) {
  auto samples = make_samples(100, 8, 6, 9);
  std::string a = temp_file("same_a.h5"), b = temp_file("same_b.h5");
  write_shard(a, samples, options_for(8, 6, true));
  usleep(1100000);  // HDF5 timestamps have 1 s resolution: make them differ if written
  write_shard(b, samples, options_for(8, 6, true));
  auto bytes = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  EXPECT_EQ(bytes(a), bytes(b));
}

TEST(Shard, DefaultImageChunkKeepsChunksNearOneMebibyte) {
  EXPECT_EQ(shard::default_image_chunk(8), 64);
  EXPECT_EQ(shard::default_image_chunk(64), 64);   // 768 KiB
  EXPECT_EQ(shard::default_image_chunk(256), 5);   // 960 KiB
  EXPECT_EQ(shard::default_image_chunk(1024), 1);  // 3 MiB: one sample per chunk
}

TEST(Shard, WriterRejectsBadSamplesAndLeavesNoFileWhenAbandoned) {
  std::string path = temp_file("bad_writer.h5");
  {
    auto writer = ShardWriter::create(path, options_for(4, 3, false));
    ASSERT_TRUE(writer.ok());
    std::vector<uint8_t> image(4 * 4 * 3), small(10);
    std::vector<int32_t> tokens(4, 1);
    ASSERT_TRUE((*writer)->append({image, "ok", {}, 0}).ok());
    absl::Status s = (*writer)->append({small, "x", {}, 0});
    EXPECT_THAT(std::string(s.message()),
                AllOf(HasSubstr(path), HasSubstr("sample 1 has 10 image bytes, expected 48")));
    s = (*writer)->append({image, "x", tokens, 0});
    EXPECT_THAT(
        std::string(s.message()),
        AllOf(HasSubstr(path), HasSubstr("sample 1 has 4 tokens, the shard holds at most 3")));
  }  // destroyed without finish()
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto bad = ShardWriter::create(path, options_for(0, 0, false));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr(path));
  std::string nowhere = temp_file("no_such_dir/x.h5");
  auto uncreatable = ShardWriter::create(nowhere, options_for(4, 0, false));
  ASSERT_FALSE(uncreatable.ok());
  EXPECT_THAT(std::string(uncreatable.status().message()),
              AllOf(HasSubstr(nowhere), HasSubstr("cannot create the file")));
}

TEST(Shard, H5pyReadsTesseraShardsAndTesseraReadsH5pyShards) {
  const int n = 90, r = 6, l = 9;
  auto samples = make_samples(n, r, l, 3);
  std::string ours = temp_file("ours.h5"), theirs = temp_file("theirs.h5");
  write_shard(ours, samples, options_for(r, l, true));
  // h5py asserts the documented schema on ours, then writes the samples it read with its own
  // defaults (17-sample chunks, str attributes); reading that back proves both directions.
  run_python(absl::StrCat("copy ", ours, " ", theirs));
  auto reader = ShardReader::open(theirs);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->tokenizer(), "sentencepiece:test-model");
  auto got = (*reader)->read(0, n);
  ASSERT_TRUE(got.ok()) << got.status();
  expect_samples(*got, samples, 0, n, l, true);
  auto part = (*reader)->read(16, 20);  // crosses an h5py chunk boundary
  ASSERT_TRUE(part.ok()) << part.status();
  expect_samples(*part, samples, 16, 20, l, true);
}

TEST(Shard, MissingAndTruncatedFilesNameThePath) {
  std::string missing = temp_file("no_such_shard.h5");
  EXPECT_THAT(error_of(missing), AllOf(HasSubstr(missing), HasSubstr("no such file")));
  EXPECT_EQ(ShardReader::open(missing).status().code(), absl::StatusCode::kNotFound);

  std::string path = temp_file("truncated.h5");
  write_shard(path, make_samples(100, 8, 0, 4), options_for(8, 0, false));
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  EXPECT_THAT(error_of(path), AllOf(HasSubstr(path), HasSubstr("truncated")));

  std::string garbage = temp_file("garbage.h5");
  std::ofstream(garbage) << "not a shard at all";
  EXPECT_THAT(error_of(garbage), AllOf(HasSubstr(garbage), HasSubstr("not an HDF5 file")));
}

TEST(Shard, FlippedByteInAChunkIsAChecksumErrorNamingFileAndRange) {
  const int n = 200, r = 8;
  auto samples = make_samples(n, r, 0, 5);
  std::string path = temp_file("flipped.h5");
  write_shard(path, samples, options_for(r, 0, true));  // images chunks of 64 samples

  // Find where chunk 1 of images (samples [64, 128)) lies in the file.
  const auto chunk = testing::stored_chunk_at_row(path, "images", 64);
  ASSERT_TRUE(chunk.has_value());
  ASSERT_EQ(chunk->bytes, 64u * r * r * 3 + 4);  // uncompressed bytes + the 4-byte checksum
  testing::flip_byte(path, chunk->address + chunk->bytes / 2, 0x10);
  auto reader = ShardReader::open(path);  // the schema is intact
  ASSERT_TRUE(reader.ok()) << reader.status();
  for (auto [first, count] : {std::pair<int64_t, int64_t>{64, 64}, {100, 3}, {30, 100}}) {
    auto bad = (*reader)->read(first, count);
    ASSERT_FALSE(bad.ok()) << first;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(bad.status().message()),
                AllOf(HasSubstr(path), HasSubstr("dataset 'images'"),
                      HasSubstr(absl::StrCat("samples [", first, ", ", first + count, ")")),
                      HasSubstr("checksum mismatch"), HasSubstr("Fletcher32")));
  }
  // Nothing else is lost: the samples around the corrupt chunk still read exactly.
  for (auto [first, count] : {std::pair<int64_t, int64_t>{0, 64}, {128, 72}}) {
    auto good = (*reader)->read(first, count);
    ASSERT_TRUE(good.ok()) << good.status();
    expect_samples(*good, samples, first, count, 0, true);
  }
}

TEST(Shard, SchemaDefectsAreRejectedNamingFileAndDataset) {
  const int n = 40, r = 8, l = 5;
  std::string src = temp_file("schema_src.h5");
  write_shard(src, make_samples(n, r, l, 6), options_for(r, l, true));
  const std::pair<const char*, std::string> cases[] = {
      {"images_dtype", "dataset 'images' has dtype int16, expected uint8"},
      {"images_shape", "dataset 'images' has shape (40, 8, 7, 3), expected (40, 8, 8, 3)"},
      {"tokens_dtype", "dataset 'tokens' has dtype int64, expected int32"},
      {"labels_count", "dataset 'labels' has shape (39), expected (40)"},
      {"num_samples", "dataset 'images' has shape (40, 8, 8, 3), expected (41, 8, 8, 3)"},
      {"offsets_end", "dataset 'caption_offsets' ends at"},
      {"version", "format_version 3, this build reads versions 1 and 2"},
      {"no_fletcher", "dataset 'labels' is not chunked with the Fletcher32 checksum filter"},
  };
  for (const auto& [kind, message] : cases) {
    std::string dst = temp_file(absl::StrCat("schema_", kind, ".h5"));
    run_python(absl::StrCat("break ", src, " ", dst, " ", kind));
    EXPECT_THAT(error_of(dst), AllOf(HasSubstr(dst), HasSubstr(message))) << kind;
  }
}

TEST(Shard, ReaderRefusesToReadAcrossFork) {
  std::string path = temp_file("fork.h5");
  write_shard(path, make_samples(3, 4, 0, 8), options_for(4, 0, false));
  auto reader = ShardReader::open(path);
  ASSERT_TRUE(reader.ok());
  pid_t child = fork();
  if (child == 0) {
    auto r = (*reader)->read(0, 1);
    _exit(!r.ok() && std::string(r.status().message()).find("fork()") != std::string::npos ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE((*reader)->read(0, 3).ok());
}

}  // namespace
}  // namespace tessera::data
