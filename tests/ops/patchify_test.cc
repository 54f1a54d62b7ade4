#include "ops/patchify.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class PatchifyTest : public testing::DeviceTest {};

struct Case {
  Shape images;
  int64_t p;
};

TEST_P(PatchifyTest, MatchesTorchAndInverts) {
  const std::vector<Case> cases = {{{1, 1, 1, 1}, 1},
                                   {{2, 4, 6, 3}, 2},
                                   {{3, 32, 32, 4}, 4},
                                   {{1, 14, 7, 5}, 7},
                                   {{2, 224, 224, 3}, 16}};
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < cases.size(); ++c) {
    const Shape& s = cases[c].images;
    const int64_t p = cases[c].p;
    in[case_key(c, "images")] = testing::normal(s, 2 * c);
    in[case_key(c, "patches")] =
        testing::normal({s[0], (s[1] / p) * (s[2] / p), p * p * s[3]}, 2 * c + 1);
    attrs[case_key(c, "p")] = std::to_string(p);
  }
  NamedTensors ref = testing::run_reference("patchify", in, attrs);
  for (size_t c = 0; c < cases.size(); ++c) {
    const int64_t p = cases[c].p;
    const std::string what = shape_str(cases[c].images) + " p=" + std::to_string(p);
    Tensor images = to_device(in[case_key(c, "images")], device());
    Tensor patches = to_device(in[case_key(c, "patches")], device());
    Tensor pat = Tensor::empty(patches.shape(), DType::f32, device());
    ops::patchify(images, pat, p);
    EXPECT_ALL_CLOSE(pat, ref[case_key(c, "patches_out")], 0, "patchify " + what);
    Tensor img = Tensor::empty(images.shape(), DType::f32, device());
    ops::unpatchify(patches, img, p);
    EXPECT_ALL_CLOSE(img, ref[case_key(c, "images_out")], 0, "unpatchify " + what);
    ops::unpatchify(pat, img, p);  // round trip
    EXPECT_ALL_CLOSE(img, in[case_key(c, "images")], 0, "round trip " + what);
  }
}

TEST_P(PatchifyTest, BadArgumentsNameOpAndShapes) {
  Tensor images = Tensor::zeros({2, 6, 6, 3}, DType::f32, device());
  Tensor patches = Tensor::zeros({2, 9, 11}, DType::f32, device());
  try {
    ops::patchify(images, patches, 2);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "patchify: patches must be f32(2, 9, 12), got f32(2, 9, 11) " + device().str());
  }
  EXPECT_THROW(ops::patchify(images, patches, 4), Error);  // 6 is not divisible by 4
  EXPECT_THROW(ops::unpatchify(patches, images.view({2, 36, 3}), 2), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(PatchifyTest);

}  // namespace
}  // namespace tessera
