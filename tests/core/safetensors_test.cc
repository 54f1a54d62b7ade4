#include "core/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/random.h"

namespace tessera {
namespace {

std::string temp_file(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

TEST(Safetensors, RoundTripKeepsNamesShapesAndBytes) {
  NamedTensors in;
  in["a.weight"] = Tensor::empty({3, 5}, DType::f32);
  fill_uniform(in["a.weight"], 1, 0, -2, 2);
  in["ids"] = Tensor::empty({4}, DType::i32);
  for (int i = 0; i < 4; ++i) in["ids"].data<int32_t>()[i] = i * 1000 - 7;
  std::string path = temp_file("rt.safetensors");
  ASSERT_TRUE(write_safetensors(path, in, {{"format", "pt"}}).ok());
  auto out = read_safetensors(path);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ(out->at("a.weight").shape(), Shape({3, 5}));
  EXPECT_EQ(0, std::memcmp(out->at("a.weight").raw_data(), in["a.weight"].raw_data(), 60));
  EXPECT_EQ(out->at("ids").data<int32_t>()[3], 2993);
}

TEST(Safetensors, TruncatedAndGarbageFilesAreRejectedWithTheirPath) {
  NamedTensors in;
  in["w"] = Tensor::zeros({100}, DType::f32);
  std::string path = temp_file("trunc.safetensors");
  ASSERT_TRUE(write_safetensors(path, in).ok());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  auto r = read_safetensors(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("'w'"), std::string::npos) << r.status();

  std::string garbage = temp_file("garbage.safetensors");
  std::ofstream(garbage) << "this is not a safetensors file";
  r = read_safetensors(garbage);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("garbage.safetensors"), std::string::npos);
  EXPECT_FALSE(read_safetensors(temp_file("missing.safetensors")).ok());
}

// A file of `header` as its JSON header (and `data` bytes after it).
std::string with_header(const std::string& name, const std::string& header, size_t data = 0) {
  const std::string path = temp_file(name);
  std::ofstream f(path, std::ios::binary);
  const uint64_t n = header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header << std::string(data, '\0');
  return path;
}

std::string error_of(const std::string& path) {
  auto r = read_safetensors(path);
  EXPECT_FALSE(r.ok()) << path;
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(Safetensors, HeaderLengthOverTheLimitIsRefusedBeforeReadingIt) {
  // A sparse file long enough for the claimed header: the length alone is refused.
  const std::string path = temp_file("huge_header.safetensors");
  {
    std::ofstream f(path, std::ios::binary);
    const uint64_t n = kMaxSafetensorsHeaderBytes + 1;
    f.write(reinterpret_cast<const char*>(&n), 8);
  }
  std::filesystem::resize_file(path, 8 + kMaxSafetensorsHeaderBytes + 16);
  const std::string e = error_of(path);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("header length 100000001 bytes exceeds the limit of 100000000"),
            std::string::npos)
      << e;
  std::filesystem::remove(path);
}

TEST(Safetensors, MalformedEntriesAreErrorsNamingTensorAndField) {
  // Each was an uncaught nlohmann::json exception or an unbounded allocation before.
  const std::pair<const char*, const char*> cases[] = {
      {R"({"w": 3})", "entry is not a JSON object"},
      {R"({"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})", "field 'shape'"},
      {R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", "field 'shape'"},
      {R"({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}})", "field 'shape'"},
      {R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})",
       "more elements than the file holds"},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": {"a": 1}}})",
       "field 'data_offsets'"},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, -8]}})", "field 'data_offsets'"},
      {R"({"w": {"dtype": "F32", "shape": [2]}})", "field 'data_offsets'"},
  };
  int i = 0;
  for (const auto& [header, want] : cases) {
    const std::string e =
        error_of(with_header("bad" + std::to_string(i++) + ".safetensors", header, 8));
    EXPECT_NE(e.find("tensor 'w'"), std::string::npos) << header << " -> " << e;
    EXPECT_NE(e.find(want), std::string::npos) << header << " -> " << e;
  }
}

}  // namespace
}  // namespace tessera
