// TensorBoard output of MetricsWriter, read back by the real `tensorboard` Python package (in
// the virtual environment scripts/setup makes at SOURCE/.venv), and the CRC32C under it.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "nlohmann/json.hpp"
#include "tests/support/reference.h"
#include "tests/train/train_test_support.h"
#include "train/metrics.h"
#include "train/tfrecord.h"

namespace tessera::train {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 and the classic check value.
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(TfRecord, FrameLayout) {
  const std::string f = tfrecord_frame("abc");
  ASSERT_EQ(f.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(uint8_t(f[0]), 3);
  for (int i = 1; i < 8; ++i) EXPECT_EQ(f[i], 0);
  EXPECT_EQ(f.substr(12, 3), "abc");
}

// Runs read_tensorboard.py on `path`; the set-up failing (no venv, no tensorboard) fails.
nlohmann::json read_with_tensorboard(const std::string& path) {
  const std::string python = testing::source_path(".venv/bin/python");
  if (!std::filesystem::exists(python)) {
    ADD_FAILURE() << python << " is missing: run scripts/setup (installs tensorboard there)";
    return {};
  }
  const std::string out = path + ".json";
  const std::string cmd = python + " " + testing::source_path("tests/train/read_tensorboard.py") +
                          " '" + path + "' > '" + out + "'";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "failed: " << cmd;
    return {};
  }
  std::ifstream f(out);
  return nlohmann::json::parse(f);
}

TEST(MetricsWriter, TensorBoardReadsTrainAndEvalScalars) {
  const std::string dir = testing_support::run_dir("tb_metrics");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string event_file;
  {
    MetricsWriter w(dir + "/metrics.jsonl");
    event_file = w.tensorboard_path();
    for (int s = 1; s <= 5; ++s) {
      w.write({{"step", s * 10}, {"loss", 4.0 / s}, {"lr", 1e-3 * s}, {"note", "text"}});
    }
    w.write({{"step", 50}, {"kind", "eval"}, {"loss", 2.5}, {"zero_shot_top1", 0.375}});
    w.write({{"step", 50}, {"kind", "checkpoint"}, {"ckpt_write_ms", 7.5}});
  }
  ASSERT_EQ(std::filesystem::path(event_file).parent_path(), std::filesystem::path(dir) / "tb");
  EXPECT_EQ(std::filesystem::path(event_file).filename().string().rfind("events.out.tfevents.", 0),
            0u);

  const nlohmann::json r = read_with_tensorboard(event_file);
  ASSERT_FALSE(r.is_null());
  EXPECT_EQ(r["file_version"], "brain.Event:2");
  EXPECT_EQ(r["records"], 8);  // file_version + 7 records
  const auto& sc = r["scalars"];
  ASSERT_TRUE(sc.contains("train/loss")) << sc.dump();
  ASSERT_TRUE(sc.contains("train/lr"));
  EXPECT_FALSE(sc.contains("train/note"));  // strings are not scalars
  EXPECT_FALSE(sc.contains("train/step"));
  ASSERT_EQ(sc["train/loss"].size(), 5u);
  for (int s = 1; s <= 5; ++s) {
    EXPECT_EQ(sc["train/loss"][s - 1][0], s * 10);
    EXPECT_FLOAT_EQ(sc["train/loss"][s - 1][1].get<float>(), float(4.0 / s));
    EXPECT_FLOAT_EQ(sc["train/lr"][s - 1][1].get<float>(), float(1e-3 * s));
  }
  ASSERT_EQ(sc["eval/loss"].size(), 1u);
  EXPECT_EQ(sc["eval/loss"][0][0], 50);
  EXPECT_FLOAT_EQ(sc["eval/loss"][0][1].get<float>(), 2.5f);
  EXPECT_FLOAT_EQ(sc["eval/zero_shot_top1"][0][1].get<float>(), 0.375f);
  EXPECT_FALSE(sc.contains("eval/kind"));
  ASSERT_TRUE(sc.contains("checkpoint/ckpt_write_ms"));  // other kinds under their own name
  EXPECT_FALSE(sc.contains("train/ckpt_write_ms"));
}

TEST(MetricsWriter, CorruptedRecordFailsTensorBoardCrcCheck) {
  // The reader must actually check our CRCs: flip one payload byte and it has to refuse.
  const std::string dir = testing_support::run_dir("tb_corrupt");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string event_file;
  {
    MetricsWriter w(dir + "/metrics.jsonl");
    event_file = w.tensorboard_path();
    w.write({{"step", 1}, {"loss", 1.0}});
  }
  std::fstream f(event_file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(0, std::ios::end);
  const auto size = int64_t(f.tellg());
  f.seekg(size - 6);  // inside the last record's payload
  const char c = char(f.get());
  f.seekp(size - 6);
  f.put(char(c ^ 0x5a));
  f.close();
  const std::string python = testing::source_path(".venv/bin/python");
  ASSERT_TRUE(std::filesystem::exists(python)) << "run scripts/setup";
  const std::string cmd = python + " " + testing::source_path("tests/train/read_tensorboard.py") +
                          " '" + event_file + "' > /dev/null 2>&1";
  EXPECT_NE(std::system(cmd.c_str()), 0);
}

}  // namespace
}  // namespace tessera::train
