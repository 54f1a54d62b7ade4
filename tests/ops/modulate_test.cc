#include "ops/modulate.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/threads.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class ModulateTest : public testing::DeviceTest {};

TEST_P(ModulateTest, MatchesTorch) {
  const std::vector<Shape> shapes = {{1, 1, 1},   {2, 7, 65},    {3, 65, 127},
                                     {4, 127, 7}, {2, 256, 384}, {1, 3, 600}};
  NamedTensors in;
  for (size_t c = 0; c < shapes.size(); ++c) {
    const Shape& s = shapes[c];
    in[case_key(c, "x")] = testing::normal(s, 4 * c);
    in[case_key(c, "shift")] = testing::normal({s[0], s[2]}, 4 * c + 1);
    in[case_key(c, "scale")] = testing::normal({s[0], s[2]}, 4 * c + 2, 0.5f);
    in[case_key(c, "dy")] = testing::normal(s, 4 * c + 3);
  }
  NamedTensors ref = testing::run_reference("modulate", in);
  for (size_t c = 0; c < shapes.size(); ++c) {
    const Shape& s = shapes[c];
    const std::string what = shape_str(s);
    auto dev = [&](const char* name) { return to_device(in[case_key(c, name)], device()); };
    Tensor x = dev("x"), scale = dev("scale");
    Tensor y = Tensor::empty(s, DType::f32, device());
    ops::modulate_forward(x, dev("shift"), scale, y);
    EXPECT_ALL_CLOSE(y, ref[case_key(c, "y")], 1e-6, "y " + what);
    // Garbage in the outputs: backward writes all three.
    Tensor dx = to_device(testing::uniform(s, 90), device());
    Tensor dshift = to_device(testing::uniform({s[0], s[2]}, 91), device());
    Tensor dscale = to_device(testing::uniform({s[0], s[2]}, 92), device());
    ops::modulate_backward(dev("dy"), x, scale, dx, dshift, dscale);
    EXPECT_ALL_CLOSE(dx, ref[case_key(c, "dx")], 1e-6, "dx " + what);
    EXPECT_ALL_CLOSE(dshift, ref[case_key(c, "dshift")], 1e-5, "dshift " + what);
    EXPECT_ALL_CLOSE(dscale, ref[case_key(c, "dscale")], 1e-5, "dscale " + what);
  }
}

// CPU only (thread count is a CPU notion).
TEST(ModulateCpu, BackwardSameForAnyThreadCount) {
  const Shape s = {3, 300, 520};
  Tensor x = testing::normal(s, 1), dy = testing::normal(s, 2),
         scale = testing::normal({3, 520}, 3);
  auto run = [&](int threads) {
    const int saved = num_threads();
    set_num_threads(threads);
    Tensor dx = Tensor::empty(s, DType::f32), ds = Tensor::empty({3, 520}, DType::f32),
           dsc = Tensor::empty({3, 520}, DType::f32);
    ops::modulate_backward(dy, x, scale, dx, ds, dsc);
    set_num_threads(saved);
    return std::vector<Tensor>{dx, ds, dsc};
  };
  std::vector<Tensor> one = run(1), many = run(std::max(2, num_threads()));
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(std::memcmp(one[i].raw_data(), many[i].raw_data(), one[i].nbytes()), 0) << i;
  }
}

TEST_P(ModulateTest, BadArgumentsNameOpAndShapes) {
  Tensor x = Tensor::zeros({2, 5, 65}, DType::f32, device());
  Tensor shift = Tensor::zeros({2, 64}, DType::f32, device());
  Tensor scale = Tensor::zeros({2, 65}, DType::f32, device());
  try {
    ops::modulate_forward(x, shift, scale, x);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "modulate_forward: shift must be f32(2, 65), got f32(2, 64) " + device().str());
  }
  EXPECT_THROW(ops::modulate_forward(x.view({10, 65}), scale, scale, x), Error);
  EXPECT_THROW(ops::modulate_backward(x, x, scale, x, scale, shift), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(ModulateTest);

}  // namespace
}  // namespace tessera
