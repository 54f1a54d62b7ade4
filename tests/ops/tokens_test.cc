#include "ops/tokens.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class TokensTest : public testing::DeviceTest {};

struct PatchCase {
  Shape images;
  int64_t patch;
};

TEST_P(TokensTest, PatchifyMatchesTorchAndUnpatchifyInvertsIt) {
  const std::vector<PatchCase> cases = {{{1, 4, 4, 1}, 2},
                                        {{2, 6, 9, 3}, 3},
                                        {{3, 8, 4, 5}, 4},
                                        {{2, 5, 5, 2}, 1},
                                        {{4, 32, 32, 3}, 8}};
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < cases.size(); ++c) {
    in[case_key(c, "images")] = testing::uniform(cases[c].images, c);
    attrs[case_key(c, "patch")] = std::to_string(cases[c].patch);
  }
  NamedTensors ref = testing::run_reference("tokens", in, attrs);
  for (size_t c = 0; c < cases.size(); ++c) {
    const Shape& s = cases[c].images;
    const int64_t p = cases[c].patch;
    Tensor images = to_device(in[case_key(c, "images")], device());
    Tensor patches =
        Tensor::empty({s[0], (s[1] / p) * (s[2] / p), p * p * s[3]}, DType::f32, device());
    ops::patchify(images, p, patches);
    // A copy: exact.
    EXPECT_ALL_CLOSE(patches, ref[case_key(c, "patches")], 0.0, "patchify " + shape_str(s));
    Tensor back = Tensor::zeros(s, DType::f32, device());
    ops::unpatchify(patches, p, back);
    EXPECT_ALL_CLOSE(back, images, 0.0, "unpatchify " + shape_str(s));
  }
}

TEST_P(TokensTest, CopyTokensMovesRowRangesPerSample) {
  const int64_t B = 3, Ts = 5, Td = 7, C = 4;
  Tensor src_host = testing::uniform({B, Ts, C}, 9);
  Tensor dst_host = testing::uniform({B, Td, C}, 10);
  Tensor src = to_device(src_host, device()), dst = to_device(dst_host, device());
  ops::copy_tokens(src, 1, dst, 3, 4);  // src rows 1..4 -> dst rows 3..6
  Tensor got = to_device(dst, Device::cpu());
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < Td; ++t) {
      const float* expect = t >= 3 ? src_host.data<float>() + (b * Ts + t - 2) * C
                                   : dst_host.data<float>() + (b * Td + t) * C;
      EXPECT_EQ(0, std::memcmp(got.data<float>() + (b * Td + t) * C, expect, C * sizeof(float)))
          << "b " << b << " t " << t;
    }
  }
}

TEST_P(TokensTest, BadArgumentsNameOpAndShapes) {
  Tensor images = Tensor::zeros({2, 6, 8, 3}, DType::f32, device());
  Tensor patches = Tensor::zeros({2, 12, 12}, DType::f32, device());
  try {
    ops::patchify(images, 4, patches);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("divisible by the patch 4"), std::string::npos)
        << e.what();
  }
  Tensor wrong = Tensor::zeros({2, 12, 11}, DType::f32, device());
  try {
    ops::patchify(images, 2, wrong);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("patchify: patches must be f32(2, 12, 12)"),
              std::string::npos)
        << e.what();
  }
  Tensor a = Tensor::zeros({2, 3, 4}, DType::f32, device());
  Tensor b = Tensor::zeros({2, 3, 5}, DType::f32, device());
  EXPECT_THROW(ops::copy_tokens(a, 0, b, 0, 1), Error);
  EXPECT_THROW(ops::copy_tokens(a, 2, a.slice(0, 2), 0, 2), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(TokensTest);

}  // namespace
}  // namespace tessera
