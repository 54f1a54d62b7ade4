#include "ops/embedding.h"

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

class EmbeddingTest : public testing::DeviceTest {};

// n ids drawn from [0, v); with n > v they repeat.
Tensor make_ids(int64_t n, int64_t v, uint64_t stream) {
  Tensor u = testing::uniform({n}, stream, 0.0f, 1.0f);
  Tensor ids = Tensor::empty({n}, DType::i32);
  for (int64_t i = 0; i < n; ++i)
    ids.data<int32_t>()[i] = std::min<int32_t>(int32_t(u.data<float>()[i] * v), v - 1);
  return ids;
}

struct Case {
  int64_t n, v, c;
};

TEST_P(EmbeddingTest, MatchesTorch) {
  const std::vector<Case> cases = {{1, 1, 1},      {7, 3, 65},      {65, 127, 7},
                                   {127, 50, 768}, {300, 1000, 33}, {1024, 16, 128}};
  NamedTensors in;
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    in[case_key(c, "ids")] = make_ids(k.n, k.v, 4 * c);
    in[case_key(c, "table")] = testing::normal({k.v, k.c}, 4 * c + 1);
    in[case_key(c, "dout")] = testing::normal({k.n, k.c}, 4 * c + 2);
    in[case_key(c, "dtable0")] = testing::uniform({k.v, k.c}, 4 * c + 3);
  }
  NamedTensors ref = testing::run_reference("embedding", in);
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    const std::string what =
        "n=" + std::to_string(k.n) + " v=" + std::to_string(k.v) + " c=" + std::to_string(k.c);
    Tensor ids = to_device(in[case_key(c, "ids")], device());
    Tensor out = Tensor::empty({k.n, k.c}, DType::f32, device());
    ops::embedding_forward(ids, to_device(in[case_key(c, "table")], device()), out);
    EXPECT_ALL_CLOSE(out, ref[case_key(c, "out")], 0, "out " + what);
    Tensor dtable = to_device(in[case_key(c, "dtable0")], device());  // pre-filled: accumulates
    ops::embedding_backward(to_device(in[case_key(c, "dout")], device()), ids, dtable);
    EXPECT_ALL_CLOSE(dtable, ref[case_key(c, "dtable")], 1e-5, "dtable " + what);
  }
}

// Threads split columns: every dtable element sums its rows in position order, so 1 thread and
// all threads agree bitwise, also with heavily repeated ids.
// CPU only (thread count is a CPU notion).
TEST(EmbeddingCpu, BackwardSameForAnyThreadCount) {
  const int64_t n = 4096, v = 7, c = 200;
  Tensor ids = make_ids(n, v, 1), dout = testing::normal({n, c}, 2);
  auto run = [&](int threads) {
    const int saved = num_threads();
    set_num_threads(threads);
    Tensor dtable = testing::uniform({v, c}, 3);
    ops::embedding_backward(dout, ids, dtable);
    set_num_threads(saved);
    return dtable;
  };
  Tensor one = run(1), many = run(std::max(2, num_threads()));
  EXPECT_EQ(std::memcmp(one.raw_data(), many.raw_data(), one.nbytes()), 0);
}

TEST_P(EmbeddingTest, BadIdsNamePositionAndValue) {
  Tensor table = Tensor::zeros({64, 8}, DType::f32, device());
  Tensor out = Tensor::zeros({5, 8}, DType::f32, device());
  Tensor ids = Tensor::zeros({5}, DType::i32);
  ids.data<int32_t>()[3] = 64;
  try {
    ops::embedding_forward(to_device(ids, device()), table, out);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "embedding_forward: id 64 at position 3 is outside [0, 64)");
  }
  ids.data<int32_t>()[3] = -2;
  try {
    ops::embedding_backward(out, to_device(ids, device()), table);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "embedding_backward: id -2 at position 3 is outside [0, 64)");
  }
}

TEST_P(EmbeddingTest, BadArgumentsNameOpAndShapes) {
  Tensor table = Tensor::zeros({64, 8}, DType::f32, device());
  Tensor out = Tensor::zeros({5, 7}, DType::f32, device());
  Tensor ids = Tensor::zeros({5}, DType::i32, device());
  try {
    ops::embedding_forward(ids, table, out);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "embedding_forward: out must be f32(5, 8), got f32(5, 7) " + device().str());
  }
  EXPECT_THROW(ops::embedding_forward(Tensor::zeros({5}, DType::f32, device()), table, out), Error);
  EXPECT_THROW(ops::embedding_backward(out, ids, table), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(EmbeddingTest);

}  // namespace
}  // namespace tessera
