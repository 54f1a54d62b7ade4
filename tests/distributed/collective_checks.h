#pragma once
// The collective checks shared by the MPI communicator test (CPU tensors, collectives_test.cc)
// and the NCCL one (CUDA tensors, nccl_test.cc): the same bodies on any device. Inputs are
// rank-keyed (mpi_test_env.h value_of), built on the CPU and copied to `device`; results are
// copied back and compared with what every rank computes locally.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "tests/distributed/mpi_test_env.h"

namespace tessera::distributed::testing {

inline Tensor filled(int64_t n, int rank, Device device = Device::cpu(), int64_t offset = 0) {
  Tensor t = Tensor::empty({n}, DType::f32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < n; ++i) p[i] = value_of(rank, offset + i);
  return device.is_cpu() ? t : to_device(t, device);
}

inline float reduce_expected(ReduceOp op, int size, int64_t i) {
  float acc = op == ReduceOp::kMax ? value_of(0, i) : 0.0f;
  for (int r = 0; r < size; ++r)
    acc = op == ReduceOp::kMax ? std::max(acc, value_of(r, i)) : acc + value_of(r, i);
  return op == ReduceOp::kAvg ? acc / float(size) : acc;
}

// Counts mismatches (reporting the first) so a million-element check prints one line. `t` may
// live on any device.
template <typename F>
void expect_all(const Tensor& t_any, F expected, const std::string& what) {
  const Tensor t = t_any.device().is_cpu() ? t_any : to_device(t_any, Device::cpu());
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

inline const std::vector<int64_t>& check_sizes() {
  static const std::vector<int64_t> sizes = {1, 7, 1000003};
  return sizes;
}

inline void check_all_reduce(Communicator& world, Device d) {
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
    for (int64_t n : check_sizes()) {
      Tensor t = filled(n, world.rank(), d);
      world.all_reduce(t, op)->wait();
      expect_all(
          t, [&](int64_t i) { return reduce_expected(op, world.size(), i); },
          std::string("all_reduce ") + reduce_op_name(op) + " n=" + std::to_string(n));
    }
  }
}

inline void check_reduce_scatter(Communicator& world, Device d) {
  const int S = world.size(), R = world.rank();
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(250001)}) {
      Tensor in = filled(S * n, R, d);
      Tensor out = Tensor::zeros({n}, DType::f32, d);
      world.reduce_scatter(in, out, op)->wait();
      expect_all(
          out, [&](int64_t i) { return reduce_expected(op, S, R * n + i); },
          std::string("reduce_scatter ") + reduce_op_name(op) + " n=" + std::to_string(n));
    }
  }
}

inline void check_all_gather(Communicator& world, Device d) {
  const int S = world.size();
  for (int64_t n : check_sizes()) {
    Tensor in = filled(n, world.rank(), d);
    Tensor out = Tensor::zeros({S * n}, DType::f32, d);
    world.all_gather(in, out)->wait();
    expect_all(
        out, [&](int64_t j) { return value_of(int(j / n), j % n); },
        "all_gather n=" + std::to_string(n));
  }
}

inline void check_broadcast_from_every_root(Communicator& world, Device d) {
  for (int root = 0; root < world.size(); ++root) {
    for (int64_t n : check_sizes()) {
      Tensor t = filled(n, world.rank(), d);
      world.broadcast(t, root)->wait();
      expect_all(
          t, [&](int64_t i) { return value_of(root, i); },
          "broadcast root " + std::to_string(root) + " n=" + std::to_string(n));
    }
  }
}

inline void check_send_recv_ring(Communicator& world, Device d) {
  const int S = world.size(), R = world.rank();
  const int right = (R + 1) % S, left = (R + S - 1) % S;
  for (int64_t n : check_sizes()) {
    // Two messages per step: they must arrive in the order sent. Everything is issued before any
    // wait (a blocking send-then-recv ring would deadlock on large messages).
    Tensor a = filled(n, R, d), b = filled(n, R, d, 5);
    Tensor ra = Tensor::zeros({n}, DType::f32, d), rb = Tensor::zeros({n}, DType::f32, d);
    auto s1 = world.send(a, right);
    auto s2 = world.send(b, right);
    auto r1 = world.recv(ra, left);
    auto r2 = world.recv(rb, left);
    for (auto& w : {s1, s2, r1, r2}) w->wait();
    expect_all(
        ra, [&](int64_t i) { return value_of(left, i); }, "ring first message");
    expect_all(
        rb, [&](int64_t i) { return value_of(left, 5 + i); }, "ring second message");
  }
}

// `fresh` must not have issued anything yet.
inline void check_barrier_and_sequence_numbers(Communicator& world, Device d) {
  EXPECT_EQ(world.last_sequence(), 0);
  world.barrier()->wait();
  Tensor t = filled(3, world.rank(), d);
  auto w = world.all_reduce(t, ReduceOp::kSum);
  EXPECT_EQ(world.last_sequence(), 2);
  EXPECT_NE(w->what().find("all_reduce #2 on group 'world'"), std::string::npos) << w->what();
  // Point-to-point operations do not take collective sequence numbers.
  const int S = world.size(), R = world.rank();
  Tensor r = Tensor::zeros({3}, DType::f32, d);
  auto s = world.send(t, (R + 1) % S);
  auto rv = world.recv(r, (R + S - 1) % S);
  EXPECT_EQ(world.last_sequence(), 2);
  for (auto& x : {w, s, rv}) x->wait();
}

// 64 all-reduces of mixed sizes in flight; every 8th is large (the MPI bulk path).
inline void check_many_in_flight_complete_in_issue_order(Communicator& world, Device d) {
  const int S = world.size();
  std::vector<Tensor> tensors;
  std::vector<WorkHandle> works;
  std::vector<ReduceOp> ops;
  for (int k = 0; k < 64; ++k) {
    int64_t n = k % 8 == 5 ? 300000 + k : 1 + (int64_t(k) * 7919) % 60000;
    ReduceOp op = k % 3 == 0 ? ReduceOp::kSum : (k % 3 == 1 ? ReduceOp::kAvg : ReduceOp::kMax);
    tensors.push_back(filled(n, world.rank(), d));
    ops.push_back(op);
    works.push_back(world.all_reduce(tensors.back(), op));
  }
  // Completion is reported in issue order: whenever k is done, every j < k is too (checked
  // after reading done(k), so the order of reads cannot fake it).
  while (!works.back()->done()) {
    for (int k = int(works.size()) - 1; k >= 0; --k) {
      if (!works[k]->done()) continue;
      for (int j = 0; j < k; ++j) ASSERT_TRUE(works[j]->done()) << j << " after " << k;
      break;
    }
  }
  for (auto& w : works) w->wait();
  for (size_t k = 0; k < works.size(); ++k) {
    expect_all(
        tensors[k], [&](int64_t i) { return reduce_expected(ops[k], S, i); },
        "in-flight all_reduce " + std::to_string(k));
  }
  EXPECT_EQ(world.last_sequence(), 64);
}

inline void check_split_into_halves(Communicator& world, Device d) {
  const int R = world.rank();
  auto half = world.split(R % 2, R, "half");
  EXPECT_EQ(half->name(), "half");
  EXPECT_EQ(half->size(), (world.size() + 1 - R % 2) / 2);
  EXPECT_EQ(half->world_rank_of(half->rank()), R);
  Tensor t = Tensor::empty({1}, DType::f32);
  t.data<float>()[0] = float(R);
  if (!d.is_cpu()) t = to_device(t, d);
  half->all_reduce(t, ReduceOp::kSum)->wait();
  float want = 0;
  for (int r = R % 2; r < world.size(); r += 2) want += float(r);
  expect_all(
      t, [&](int64_t) { return want; }, "all_reduce on the half");
}

}  // namespace tessera::distributed::testing
