// Collectives of MpiCommunicator on 2 and 4 ranks (ctest distributed_collectives_test and
// distributed_collectives_test_np4), against results every rank computes locally from the
// rank-keyed inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "distributed/mpi_communicator.h"
#include "tests/distributed/mpi_test_env.h"

namespace tessera::distributed {
namespace {

using testing::test_world;
using testing::value_of;

const std::vector<int64_t> kSizes = {1, 7, 1000003};

Tensor filled(int64_t n, int rank, int64_t offset = 0) {
  Tensor t = Tensor::empty({n}, DType::f32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < n; ++i) p[i] = value_of(rank, offset + i);
  return t;
}

float reduce_expected(ReduceOp op, int size, int64_t i) {
  float acc = op == ReduceOp::kMax ? value_of(0, i) : 0.0f;
  for (int r = 0; r < size; ++r)
    acc = op == ReduceOp::kMax ? std::max(acc, value_of(r, i)) : acc + value_of(r, i);
  return op == ReduceOp::kAvg ? acc / float(size) : acc;
}

// Counts mismatches (reporting the first) so a million-element check prints one line.
template <typename F>
void expect_all(const Tensor& t, F expected, const std::string& what) {
  const float* p = t.data<float>();
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (p[i] != expected(i)) {
      if (first < 0) first = i;
      ++bad;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": first mismatch at " << first << ": got "
                    << (first >= 0 ? p[first] : 0) << ", want "
                    << (first >= 0 ? expected(first) : 0);
}

TEST(Collectives, AllReduceSumAvgMax) {
  auto world = test_world();
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
    for (int64_t n : kSizes) {
      Tensor t = filled(n, world->rank());
      world->all_reduce(t, op)->wait();
      expect_all(
          t, [&](int64_t i) { return reduce_expected(op, world->size(), i); },
          std::string("all_reduce ") + reduce_op_name(op) + " n=" + std::to_string(n));
    }
  }
}

TEST(Collectives, ReduceScatter) {
  auto world = test_world();
  const int S = world->size(), R = world->rank();
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(250001)}) {
      Tensor in = filled(S * n, R);
      Tensor out = Tensor::zeros({n}, DType::f32);
      world->reduce_scatter(in, out, op)->wait();
      expect_all(
          out, [&](int64_t i) { return reduce_expected(op, S, R * n + i); },
          std::string("reduce_scatter ") + reduce_op_name(op) + " n=" + std::to_string(n));
    }
  }
}

TEST(Collectives, AllGather) {
  auto world = test_world();
  const int S = world->size();
  for (int64_t n : kSizes) {
    Tensor in = filled(n, world->rank());
    Tensor out = Tensor::zeros({S * n}, DType::f32);
    world->all_gather(in, out)->wait();
    expect_all(
        out, [&](int64_t j) { return value_of(int(j / n), j % n); },
        "all_gather n=" + std::to_string(n));
  }
}

TEST(Collectives, BroadcastFromEveryRoot) {
  auto world = test_world();
  for (int root = 0; root < world->size(); ++root) {
    for (int64_t n : kSizes) {
      Tensor t = filled(n, world->rank());
      world->broadcast(t, root)->wait();
      expect_all(
          t, [&](int64_t i) { return value_of(root, i); },
          "broadcast root " + std::to_string(root) + " n=" + std::to_string(n));
    }
  }
}

TEST(Collectives, SendRecvRing) {
  auto world = test_world();
  const int S = world->size(), R = world->rank();
  const int right = (R + 1) % S, left = (R + S - 1) % S;
  for (int64_t n : kSizes) {
    // Two messages per step: they must arrive in the order sent. Everything is issued before any
    // wait (a blocking send-then-recv ring would deadlock on large messages).
    Tensor a = filled(n, R), b = filled(n, R, 5);
    Tensor ra = Tensor::zeros({n}, DType::f32), rb = Tensor::zeros({n}, DType::f32);
    auto s1 = world->send(a, right);
    auto s2 = world->send(b, right);
    auto r1 = world->recv(ra, left);
    auto r2 = world->recv(rb, left);
    for (auto& w : {s1, s2, r1, r2}) w->wait();
    expect_all(
        ra, [&](int64_t i) { return value_of(left, i); }, "ring first message");
    expect_all(
        rb, [&](int64_t i) { return value_of(left, 5 + i); }, "ring second message");
  }
}

TEST(Collectives, BarrierAndSequenceNumbers) {
  auto world = test_world();
  EXPECT_EQ(world->last_sequence(), 0);
  world->barrier()->wait();
  Tensor t = filled(3, world->rank());
  auto w = world->all_reduce(t, ReduceOp::kSum);
  EXPECT_EQ(world->last_sequence(), 2);
  EXPECT_NE(w->what().find("all_reduce #2 on group 'world'"), std::string::npos) << w->what();
  // Point-to-point operations do not take collective sequence numbers.
  const int S = world->size(), R = world->rank();
  Tensor r = Tensor::zeros({3}, DType::f32);
  auto s = world->send(t, (R + 1) % S);
  auto rv = world->recv(r, (R + S - 1) % S);
  EXPECT_EQ(world->last_sequence(), 2);
  for (auto& x : {w, s, rv}) x->wait();
}

TEST(Collectives, ManyInFlightCompleteInIssueOrder) {
  auto world = test_world();
  const int S = world->size();
  std::vector<Tensor> tensors;
  std::vector<WorkHandle> works;
  std::vector<ReduceOp> ops;
  for (int k = 0; k < 64; ++k) {
    // Mixed sizes (small ones could finish first); every 8th takes the bulk path (>= 1 MiB).
    int64_t n = k % 8 == 5 ? 300000 + k : 1 + (int64_t(k) * 7919) % 60000;
    ReduceOp op = k % 3 == 0 ? ReduceOp::kSum : (k % 3 == 1 ? ReduceOp::kAvg : ReduceOp::kMax);
    tensors.push_back(filled(n, world->rank()));
    ops.push_back(op);
    works.push_back(world->all_reduce(tensors.back(), op));
  }
  // Completion is reported in issue order: whenever k is done, every j < k is too (checked
  // after reading done(k), so the order of reads cannot fake it).
  int64_t checks = 0;
  while (!works.back()->done()) {
    for (int k = int(works.size()) - 1; k >= 0; --k) {
      if (!works[k]->done()) continue;
      for (int j = 0; j < k; ++j) ASSERT_TRUE(works[j]->done()) << j << " after " << k;
      ++checks;
      break;
    }
  }
  for (auto& w : works) w->wait();
  for (size_t k = 0; k < works.size(); ++k) {
    expect_all(
        tensors[k], [&](int64_t i) { return reduce_expected(ops[k], S, i); },
        "in-flight all_reduce " + std::to_string(k));
  }
  EXPECT_EQ(world->last_sequence(), 64);
}

TEST(Collectives, SplitIntoHalves) {
  auto world = test_world();
  const int R = world->rank();
  auto half = world->split(R % 2, R, "half");
  EXPECT_EQ(half->name(), "half");
  EXPECT_EQ(half->size(), (world->size() + 1 - R % 2) / 2);
  EXPECT_EQ(half->world_rank_of(half->rank()), R);
  Tensor t = Tensor::empty({1}, DType::f32);
  t.data<float>()[0] = float(R);
  half->all_reduce(t, ReduceOp::kSum)->wait();
  float want = 0;
  for (int r = R % 2; r < world->size(); r += 2) want += float(r);
  EXPECT_EQ(t.data<float>()[0], want);
}

TEST(Collectives, BadArgumentsThrowNamingOpAndGroup) {
  auto world = test_world();
  Tensor in = Tensor::zeros({5}, DType::f32), out = Tensor::zeros({3}, DType::f32);
  try {
    world->reduce_scatter(in, out, ReduceOp::kSum);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reduce_scatter on 'world'"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(world->broadcast(in, world->size()), Error);
  EXPECT_THROW(world->send(in, -1), Error);
  EXPECT_THROW(world->all_reduce(Tensor(), ReduceOp::kSum), Error);
  EXPECT_THROW(world->all_reduce(Tensor::zeros({3}, DType::bf16), ReduceOp::kSum), Error);
  // Nothing was issued: the sequence is untouched and the group still works.
  EXPECT_EQ(world->last_sequence(), 0);
  world->barrier()->wait();
}

}  // namespace
}  // namespace tessera::distributed
