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

}  // namespace
}  // namespace tessera
