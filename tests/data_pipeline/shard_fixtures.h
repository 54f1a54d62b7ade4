#pragma once
// Shards the loader and chunk-reader suites write for themselves: random 8x8 images, captions,
// up to kLen tokens and a label per sample, in image chunks of 16 rows.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data_pipeline/shard_writer.h"

namespace tessera::data::testing_support {

constexpr int kRes = 8, kLen = 5;

// A fresh directory for `suite` in the test temp dir (per process: ctest may run suites at once).
inline std::string fresh_test_dir(const std::string& suite) {
  auto d = std::filesystem::path(::testing::TempDir()) / absl::StrCat(suite, "_", getpid());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

// Writes `n` random samples to `path`, drawing from `rng` (image, tokens, label per sample, in
// that order); captions are caption_prefix + "sample I".
inline void write_random_shard(const std::string& path, int n, std::mt19937& rng,
                               const std::string& caption_prefix) {
  ShardWriterOptions o;
  o.resolution = kRes;
  o.token_length = kLen;
  o.labels = true;
  o.image_chunk = 16;
  auto w = ShardWriter::create(path, o);
  ASSERT_TRUE(w.ok()) << w.status();
  for (int i = 0; i < n; ++i) {
    std::vector<uint8_t> image(kRes * kRes * 3);
    for (auto& p : image) p = uint8_t(rng());
    std::vector<int32_t> tokens(rng() % (kLen + 1));
    for (auto& t : tokens) t = int32_t(rng() % 1000);
    const std::string caption = absl::StrCat(caption_prefix, "sample ", i);
    EXPECT_TRUE((*w)->append({image, caption, tokens, int32_t(rng() % 22)}).ok());
  }
  EXPECT_TRUE((*w)->finish().ok());
}

}  // namespace tessera::data::testing_support
