#include "ops/cross_entropy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class CrossEntropyTest : public testing::DeviceTest {};

// Targets in [0, v); each row is ignored with probability `ignored`.
Tensor make_targets(int64_t n, int64_t v, uint64_t stream, float ignored, int ignore_index) {
  Tensor u = testing::uniform({2 * n}, stream, 0.0f, 1.0f);
  Tensor t = Tensor::empty({n}, DType::i32);
  for (int64_t i = 0; i < n; ++i) {
    const float* p = u.data<float>();
    t.data<int32_t>()[i] =
        p[2 * i] < ignored ? ignore_index : std::min<int32_t>(int32_t(p[2 * i + 1] * v), v - 1);
  }
  return t;
}

struct Case {
  int64_t n, v;
  float ignored;       // share of ignored rows
  int ignore_index;    // -100 unless a case says otherwise
  int64_t valid = -1;  // valid columns (a padded vocabulary); -1: all v
};

TEST_P(CrossEntropyTest, MatchesTorch) {
  const std::vector<Case> cases = {
      {1, 1, 0, -100},
      {1, 7, 0, -100},
      {7, 65, 0.3f, -100},
      {65, 127, 0.2f, -100},
      {5, 7, 1.0f, -100},  // every target ignored
      {33, 768, 0.1f, 3},
      {16, 8192, 0.25f, -100},
      {3, 5000, 0, -100},
      // Padded vocabularies: the loss of the first `valid` columns, zero gradient on the rest
      // (row lengths that take the vectorised CUDA path and ones that do not; GPT-2's padding).
      {7, 64, 0.2f, -100, 61},
      {5, 65, 0, -100, 1},
      {9, 2304, 0.1f, -100, 2200},
      {4, 50304, 0, -100, 50257},
      {6, 12, 1.0f, -100, 7}};
  const float dloss = 0.75f;
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    in[case_key(c, "logits")] = testing::normal({k.n, k.v}, 2 * c, 3.0f);
    const int64_t cols = k.valid < 0 ? k.v : k.valid;
    in[case_key(c, "targets")] = make_targets(k.n, cols, 2 * c + 1, k.ignored, k.ignore_index);
    attrs[case_key(c, "ignore_index")] = std::to_string(k.ignore_index);
    attrs[case_key(c, "valid_cols")] = std::to_string(k.valid);
    attrs[case_key(c, "dloss")] = "0.75";
  }
  NamedTensors ref = testing::run_reference("cross_entropy", in, attrs);
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    const std::string what = "(" + std::to_string(k.n) + ", " + std::to_string(k.v) + ") valid " +
                             std::to_string(k.valid);
    Tensor logits = to_device(in[case_key(c, "logits")], device());
    Tensor targets = to_device(in[case_key(c, "targets")], device());
    Tensor loss = Tensor::empty({1}, DType::f32, device());
    Tensor lse = Tensor::empty({k.n}, DType::f32, device());
    ops::cross_entropy_forward(logits, targets, loss, lse, k.ignore_index, k.valid);
    EXPECT_ALL_CLOSE(loss, ref[case_key(c, "loss")], 1e-5, "loss " + what);
    EXPECT_ALL_CLOSE(lse, ref[case_key(c, "lse")], 1e-5, "lse " + what);
    Tensor dlogits = testing::uniform({k.n, k.v}, 99);  // garbage: backward must overwrite it
    dlogits = to_device(dlogits, device());
    ops::cross_entropy_backward(logits, targets, lse, dloss, dlogits, k.ignore_index, k.valid);
    EXPECT_ALL_CLOSE(dlogits, ref[case_key(c, "dlogits")], 1e-5, "dlogits " + what);
    if (k.valid >= 0) {  // padded columns exactly 0, not merely close
      const Tensor g = testing::to_cpu_f32(dlogits);
      for (int64_t i = 0; i < k.n; ++i)
        for (int64_t j = k.valid; j < k.v; ++j)
          ASSERT_EQ(g.data<float>()[i * k.v + j], 0.0f) << what << " row " << i << " col " << j;
    }
  }
}

// Soft targets (label smoothing, mixup/CutMix's two labels with a weight per row) against
// PyTorch: F.cross_entropy(label_smoothing) without mixing, timm's mixed smoothed one-hots with it;
// ignored rows and padded vocabularies as above.
TEST_P(CrossEntropyTest, SoftTargetsMatchTorch) {
  struct SoftCase {
    int64_t n, v;
    float smoothing;
    bool mix;
    float ignored = 0;
    int64_t valid = -1;
  };
  const std::vector<SoftCase> cases = {
      {7, 10, 0.1f, false},          {9, 65, 0.2f, false, 0.3f}, {5, 1000, 0.1f, false, 0, 997},
      {8, 10, 0.0f, true},           {8, 10, 0.1f, true},        {6, 257, 0.3f, true, 0.2f},
      {4, 4096, 0.1f, true, 0, 4000}};
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t c = 0; c < cases.size(); ++c) {
    const SoftCase& k = cases[c];
    const int64_t cols = k.valid < 0 ? k.v : k.valid;
    in[case_key(c, "logits")] = testing::normal({k.n, k.v}, 300 + 3 * c, 3.0f);
    in[case_key(c, "targets")] = make_targets(k.n, cols, 301 + 3 * c, k.ignored, -100);
    if (k.mix) {
      in[case_key(c, "mix_targets")] = make_targets(k.n, cols, 302 + 3 * c, 0, -100);
      in[case_key(c, "weights")] = testing::uniform({k.n}, 303 + 3 * c, 0.0f, 1.0f);
    }
    attrs[case_key(c, "ignore_index")] = "-100";
    attrs[case_key(c, "valid_cols")] = std::to_string(k.valid);
    attrs[case_key(c, "smoothing")] = std::to_string(k.smoothing);
    attrs[case_key(c, "dloss")] = "0.75";
  }
  NamedTensors ref = testing::run_reference("soft_cross_entropy", in, attrs);
  for (size_t c = 0; c < cases.size(); ++c) {
    const SoftCase& k = cases[c];
    const std::string what = "(" + std::to_string(k.n) + ", " + std::to_string(k.v) +
                             ") smoothing " + std::to_string(k.smoothing) + (k.mix ? " mixed" : "");
    ops::SoftTargets soft;
    soft.smoothing = k.smoothing;
    if (k.mix) {
      soft.mix_targets = to_device(in[case_key(c, "mix_targets")], device());
      soft.weights = to_device(in[case_key(c, "weights")], device());
    }
    Tensor logits = to_device(in[case_key(c, "logits")], device());
    Tensor targets = to_device(in[case_key(c, "targets")], device());
    Tensor loss = Tensor::empty({1}, DType::f32, device());
    Tensor lse = Tensor::empty({k.n}, DType::f32, device());
    ops::cross_entropy_forward(logits, targets, loss, lse, -100, k.valid, soft);
    EXPECT_ALL_CLOSE(loss, ref[case_key(c, "loss")], 1e-5, "loss " + what);
    Tensor dlogits = to_device(testing::uniform({k.n, k.v}, 98), device());
    ops::cross_entropy_backward(logits, targets, lse, 0.75f, dlogits, -100, k.valid, soft);
    EXPECT_ALL_CLOSE(dlogits, ref[case_key(c, "dlogits")], 1e-5, "dlogits " + what);
  }
}

TEST_P(CrossEntropyTest, BadSoftTargetsAreNamed) {
  Tensor logits = to_device(testing::normal({2, 5}, 1), device());
  Tensor targets = Tensor::empty({2}, DType::i32), mix = Tensor::empty({2}, DType::i32);
  targets.data<int32_t>()[0] = targets.data<int32_t>()[1] = 1;
  mix.data<int32_t>()[0] = 0;
  mix.data<int32_t>()[1] = 5;
  Tensor loss = Tensor::empty({1}, DType::f32, device());
  Tensor lse = Tensor::empty({2}, DType::f32, device());
  ops::SoftTargets soft;
  soft.mix_targets = to_device(mix, device());
  soft.weights = to_device(testing::uniform({2}, 2, 0.0f, 1.0f), device());
  try {
    ops::cross_entropy_forward(logits, to_device(targets, device()), loss, lse, -100, -1, soft);
    FAIL() << "a mix target outside [0, 5) was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mix target 5 at row 1"), std::string::npos) << e.what();
  }
  ops::SoftTargets half;
  half.mix_targets = soft.mix_targets;  // weights missing
  EXPECT_THROW(
      ops::cross_entropy_forward(logits, to_device(targets, device()), loss, lse, -100, -1, half),
      Error);
  ops::SoftTargets too_smooth;
  too_smooth.smoothing = 1.0f;
  EXPECT_THROW(ops::cross_entropy_forward(logits, to_device(targets, device()), loss, lse, -100, -1,
                                          too_smooth),
               Error);
}

// Padded columns are never read: poisoning them (NaN, +inf, huge) changes nothing.
TEST_P(CrossEntropyTest, PaddedColumnsAreNotRead) {
  const int64_t n = 5, v = 68, valid = 61;
  Tensor clean = testing::normal({n, v}, 41, 2.0f);
  Tensor poisoned = Tensor::empty({n, v}, DType::f32);
  std::copy(clean.data<float>(), clean.data<float>() + n * v, poisoned.data<float>());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = valid; j < v; ++j)
      poisoned.data<float>()[i * v + j] = j % 3 == 0 ? NAN : (j % 3 == 1 ? INFINITY : 1e30f);
  const Tensor targets = to_device(make_targets(n, valid, 42, 0.2f, -100), device());
  std::vector<Tensor> out;
  for (const Tensor& x : {clean, poisoned}) {
    Tensor logits = to_device(x, device());
    Tensor loss = Tensor::empty({1}, DType::f32, device());
    Tensor lse = Tensor::empty({n}, DType::f32, device());
    Tensor dlogits = Tensor::empty({n, v}, DType::f32, device());
    ops::cross_entropy_forward(logits, targets, loss, lse, -100, valid);
    ops::cross_entropy_backward(logits, targets, lse, 1.0f, dlogits, -100, valid);
    for (const Tensor& t : {loss, lse, dlogits}) out.push_back(testing::to_cpu_f32(t));
  }
  for (int k = 0; k < 3; ++k) {
    ASSERT_EQ(out[k].numel(), out[k + 3].numel());
    for (int64_t i = 0; i < out[k].numel(); ++i)
      ASSERT_EQ(out[k].data<float>()[i], out[k + 3].data<float>()[i]) << "output " << k << " " << i;
  }
}

double loss_of(const Tensor& logits, const Tensor& targets, Device device) {
  Tensor loss = Tensor::empty({1}, DType::f32, device);
  Tensor lse = Tensor::empty({logits.dim(0)}, DType::f32, device);
  ops::cross_entropy_forward(to_device(logits, device), to_device(targets, device), loss, lse);
  return testing::to_cpu_f32(loss).data<float>()[0];
}

// Directional derivative of the loss along a random direction: central difference of the f32
// forward against the analytic backward.
TEST_P(CrossEntropyTest, FiniteDifference) {
  for (const Case& k : std::vector<Case>{{7, 65, 0.3f, -100}, {3, 127, 0, -100}, {1, 7, 0, -100}}) {
    Tensor logits = testing::normal({k.n, k.v}, 1, 2.0f);
    Tensor targets = make_targets(k.n, k.v, 2, k.ignored, -100);
    Tensor dir = testing::uniform({k.n, k.v}, 3);
    const float h = 1e-2f;
    auto moved = [&](float step) {
      Tensor out = Tensor::empty(logits.shape(), DType::f32);
      for (int64_t i = 0; i < out.numel(); ++i)
        out.data<float>()[i] = logits.data<float>()[i] + step * dir.data<float>()[i];
      return out;
    };
    const double fd =
        (loss_of(moved(h), targets, device()) - loss_of(moved(-h), targets, device())) / (2.0 * h);
    Tensor ld = to_device(logits, device()), td = to_device(targets, device());
    Tensor loss = Tensor::empty({1}, DType::f32, device());
    Tensor lse = Tensor::empty({k.n}, DType::f32, device());
    Tensor dlogits = Tensor::empty({k.n, k.v}, DType::f32, device());
    ops::cross_entropy_forward(ld, td, loss, lse);
    ops::cross_entropy_backward(ld, td, lse, 1.0f, dlogits);
    Tensor g = testing::to_cpu_f32(dlogits);
    double analytic = 0;
    for (int64_t i = 0; i < g.numel(); ++i)
      analytic += double(g.data<float>()[i]) * dir.data<float>()[i];
    EXPECT_NEAR(fd, analytic, 1e-3 * std::abs(analytic)) << k.n << "x" << k.v;
  }
}

TEST_P(CrossEntropyTest, BadTargetsNameRowAndValue) {
  Tensor logits = Tensor::zeros({4, 65}, DType::f32, device());
  Tensor loss = Tensor::empty({1}, DType::f32, device()),
         lse = Tensor::empty({4}, DType::f32, device());
  Tensor t = Tensor::zeros({4}, DType::i32);
  t.data<int32_t>()[2] = 65;
  try {
    ops::cross_entropy_forward(logits, to_device(t, device()), loss, lse);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cross_entropy_forward: target 65 at row 2 is outside [0, 65) and is not "
              "ignore_index -100");
  }
  t.data<int32_t>()[2] = -1;
  Tensor dlogits = Tensor::empty({4, 65}, DType::f32, device());
  EXPECT_THROW(ops::cross_entropy_backward(logits, to_device(t, device()), lse, 1.0f, dlogits),
               Error);
  t.data<int32_t>()[2] = -1;  // fine when -1 is the ignore index
  EXPECT_NO_THROW(ops::cross_entropy_forward(logits, to_device(t, device()), loss, lse, -1));
  // With padding, a target in the padded columns is out of range too.
  t.data<int32_t>()[2] = 61;
  try {
    ops::cross_entropy_forward(logits, to_device(t, device()), loss, lse, -100, 61);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cross_entropy_forward: target 61 at row 2 is outside [0, 61) and is not "
              "ignore_index -100");
  }
  // More valid columns than the row has.
  t.data<int32_t>()[2] = 0;
  EXPECT_THROW(ops::cross_entropy_forward(logits, to_device(t, device()), loss, lse, -100, 66),
               Error);
}

TEST_P(CrossEntropyTest, BadArgumentsNameOpAndShapes) {
  Tensor logits = Tensor::zeros({4, 65}, DType::f32, device());
  Tensor t = Tensor::zeros({3}, DType::i32, device());
  Tensor loss = Tensor::empty({1}, DType::f32, device()),
         lse = Tensor::empty({4}, DType::f32, device());
  try {
    ops::cross_entropy_forward(logits, t, loss, lse);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cross_entropy_forward: targets must be i32(4), got i32(3) " + device().str());
  }
  Tensor tf = Tensor::zeros({4}, DType::f32, device());
  EXPECT_THROW(ops::cross_entropy_forward(logits, tf, loss, lse), Error);
  Tensor d = Tensor::zeros({4, 64}, DType::f32, device());
  EXPECT_THROW(
      ops::cross_entropy_backward(logits, Tensor::zeros({4}, DType::i32, device()), lse, 1.0f, d),
      Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(CrossEntropyTest);

}  // namespace
}  // namespace tessera
