// `tessera pack --tar` input: a webdataset-style tar written by Python's tarfile (an independent
// tar writer, pax format with a long member path) packs to the same pixels as decoding the
// images directly (KEY.png, and KEY.webp written by Pillow), takes captions from KEY.txt or
// KEY.json, skips and reports incomplete or unreadable samples, and a damaged tar is an error
// naming the file.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/tar_input.h"
#include "data_pipeline/webp_decode.h"
#include "tests/support/reference.h"

namespace tessera::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path temp_dir() {
  static const fs::path d = [] {
    auto p = fs::path(::testing::TempDir()) / absl::StrCat("tessera_tar_test_", getpid());
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
  }();
  return d;
}

std::string fixture(const std::string& name) {
  return tessera::testing::source_path("tests/data/images/" + name + ".png");
}

const std::string kLong = std::string(120, 'd') + "/0006";  // needs a pax path record

// Writes the tar with Python's tarfile; returns its path.
std::string make_tar() {
  const fs::path dir = temp_dir();
  const std::string tar = (dir / "shard-000.tar").string();
  const std::string script = (dir / "make_tar.py").string();
  std::ofstream(script) << R"(import io, json, sys, tarfile
from PIL import Image
out, rgb, gray, long = sys.argv[1:5]
def add(t, name, data):
    info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "a/0001.png", open(rgb, "rb").read()); add(t, "a/0001.txt", b"  an rgb picture\n")
    add(t, "a/0002.png", open(gray, "rb").read())
    add(t, "a/0002.json", json.dumps({"caption": "a gray picture", "url": "x"}).encode())
    add(t, "a/0003.txt", b"a caption without an image")
    add(t, "a/0004.png", b"\x89PNG not really"); add(t, "a/0004.txt", b"broken image")
    add(t, "a/0005.png", open(rgb, "rb").read()); add(t, "a/0005.txt", b"   ")
    add(t, long + ".png", open(gray, "rb").read()); add(t, long + ".txt", b"a long name")
    webp = io.BytesIO(); Image.open(rgb).convert("RGB").save(webp, "WEBP", lossless=True)
    add(t, "a/0007.webp", webp.getvalue()); add(t, "a/0007.txt", b"a webp picture")
)";
  const char* py = std::getenv("TESSERA_PYTHON");
  const std::string cmd = absl::StrCat(py ? py : "/usr/bin/python3", " ", script, " ", tar, " ",
                                       fixture("rgb8"), " ", fixture("gray8"), " ", kLong);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return tar;
}

TEST(Tar, ReadsKeysImagesAndCaptionsFromTxtOrJson) {
  const std::string tar = make_tar();
  auto samples = read_webdataset_tar(tar);
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 7u);
  std::map<std::string, TarSample> by_key;
  for (auto& s : *samples) by_key[s.key] = s;
  EXPECT_EQ(by_key["a/0001"].caption, "an rgb picture");
  EXPECT_EQ(by_key["a/0002"].caption, "a gray picture");
  EXPECT_EQ(by_key["a/0003"].problem, "no image member (KEY.jpg, KEY.jpeg, KEY.png or KEY.webp)");
  EXPECT_EQ(by_key["a/0007"].caption, "a webp picture");
  EXPECT_TRUE(is_webp(by_key["a/0007"].image));
  EXPECT_EQ(by_key[kLong].caption, "a long name");
  std::ifstream f(fixture("gray8"), std::ios::binary);
  const std::vector<uint8_t> gray((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(by_key[kLong].image, gray);
}

TEST(Tar, PackGivesTheDecodedPixelsAndReportsSkippedSamples) {
  PackOptions o;
  o.tar_paths = {make_tar()};
  o.out_dir = (temp_dir() / "packed").string();
  o.resolution = 8;
  o.val_fraction = 0;
  auto report = pack_images(o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->inputs, 7);
  std::map<std::string, std::string> skipped;
  for (const auto& s : report->skipped) skipped[s.path] = s.reason;
  ASSERT_EQ(skipped.size(), 3u);
  const std::string tar = o.tar_paths[0];
  EXPECT_THAT(skipped[tar + ":a/0003"], HasSubstr("no image member"));
  EXPECT_THAT(skipped[tar + ":a/0004"], HasSubstr(tar + ":a/0004"));  // decoder names it
  EXPECT_EQ(skipped[tar + ":a/0005"], "empty caption");

  auto reader = ShardReader::open((fs::path(o.out_dir) / report->splits[0].shards[0]).string());
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto got = (*reader)->read(0, (*reader)->num_samples());
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->count, 4);
  const std::map<std::string, std::string> source = {{"an rgb picture", "rgb8"},
                                                     {"a gray picture", "gray8"},
                                                     {"a long name", "gray8"},
                                                     {"a webp picture", "rgb8"}};  // lossless
  for (int64_t i = 0; i < got->count; ++i) {
    SCOPED_TRACE(got->captions[i]);
    auto image = read_image_file(fixture(source.at(got->captions[i])));
    ASSERT_TRUE(image.ok());
    const RgbImage want = resize_and_center_crop(*image, 8);
    EXPECT_TRUE(std::equal(want.pixels.begin(), want.pixels.end(), got->images.begin() + i * 192));
  }
}

TEST(Tar, DamagedTarsAreErrorsNamingTheFile) {
  const std::string tar = make_tar();
  const std::string cut = (temp_dir() / "cut.tar").string();
  fs::copy_file(tar, cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, 2000);  // inside the first image's data
  auto r = read_webdataset_tar(cut);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::AllOf(HasSubstr(cut), HasSubstr("truncated")));
  const std::string garbage = (temp_dir() / "garbage.tar").string();
  std::ofstream(garbage) << std::string(1024, 'x');
  r = read_webdataset_tar(garbage);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::AllOf(HasSubstr(garbage), HasSubstr("header checksum mismatch")));
  EXPECT_THAT(std::string(read_webdataset_tar("/nonexistent.tar").status().message()),
              HasSubstr("/nonexistent.tar"));
}

}  // namespace
}  // namespace tessera::data
