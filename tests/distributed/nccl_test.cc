// NcclCommunicator on CUDA tensors: the same collective checks as MpiCommunicator's test
// (collective_checks.h), on 1 rank (ctest distributed_nccl_test) and on 2
// (distributed_nccl_test_np2, which needs 2 GPUs: NCCL refuses two ranks on one device). Every
// rank drives cuda:(rank). Without a CUDA device every test skips with "no CUDA device".
#include <gtest/gtest.h>

#include <memory>

#include "core/bf16.h"
#include "distributed/make_communicator.h"
#include "distributed/mpi_communicator.h"
#include "distributed/nccl_communicator.h"
#include "distributed/routed_communicator.h"
#include "tests/distributed/collective_checks.h"
#include "tests/distributed/mpi_test_env.h"

namespace tessera::distributed {
namespace {

using namespace testing;  // NOLINT: the shared checks

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    int size = 1, rank = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const int devices = cuda_device_count();
    if (devices == 0) GTEST_SKIP() << "no CUDA device";
    if (devices < size)
      GTEST_SKIP() << "no CUDA device for every rank (" << size << " ranks, " << devices
                   << " devices; NCCL needs one device per rank)";
    device_ = Device::cuda(rank);
  }
  std::unique_ptr<NcclCommunicator> world() {
    NcclOptions options;
    options.timeout_s = 60;
    return NcclCommunicator::world(device_.index, options);
  }
  Device device_;
};

TEST_F(Nccl, AllReduceSumAvgMax) {
  check_all_reduce(*world(), device_);
}
TEST_F(Nccl, ReduceScatter) {
  check_reduce_scatter(*world(), device_);
}
TEST_F(Nccl, AllGather) {
  check_all_gather(*world(), device_);
}
TEST_F(Nccl, BroadcastFromEveryRoot) {
  check_broadcast_from_every_root(*world(), device_);
}
TEST_F(Nccl, SendRecvRing) {
  check_send_recv_ring(*world(), device_);
}
TEST_F(Nccl, BarrierAndSequenceNumbers) {
  check_barrier_and_sequence_numbers(*world(), device_);
}
TEST_F(Nccl, ManyInFlightCompleteInIssueOrder) {
  check_many_in_flight_complete_in_issue_order(*world(), device_);
}
TEST_F(Nccl, SplitIntoHalves) {
  check_split_into_halves(*world(), device_);
}

TEST_F(Nccl, Bf16AllReduceSum) {
  auto w = world();
  // Small integers: exact in bf16 for any summation order.
  Tensor host = Tensor::empty({1000}, DType::bf16);
  for (int64_t i = 0; i < 1000; ++i)
    host.data<bf16>()[i] = float_to_bf16(float(w->rank() + 1 + i % 7));
  Tensor t = to_device(host, device_);
  w->all_reduce(t, ReduceOp::kSum)->wait();
  Tensor back = to_device(t, Device::cpu());
  const int S = w->size();
  int64_t bad = 0;
  for (int64_t i = 0; i < 1000; ++i) {
    const float want = float(S * (S + 1) / 2 + S * (i % 7));
    bad += bf16_to_float(back.data<bf16>()[i]) != want;
  }
  EXPECT_EQ(bad, 0);
}

// The factory the trainer uses: CUDA tensors over NCCL, host tensors over MPI, one group.
TEST_F(Nccl, FactoryRoutesCudaTensorsToNcclAndHostTensorsToMpi) {
  CommunicatorOptions options;
  options.timeout_s = 60;
  auto comm = make_world_communicator(device_, options);
  auto* routed = dynamic_cast<RoutedCommunicator*>(comm.get());
  ASSERT_NE(routed, nullptr);
  EXPECT_NE(dynamic_cast<NcclCommunicator*>(&routed->device()), nullptr);
  EXPECT_NE(dynamic_cast<MpiCommunicator*>(&routed->host()), nullptr);
  check_all_reduce(*comm, device_);
  const int64_t nccl_ops = routed->device().last_sequence();
  EXPECT_GT(nccl_ops, 0);
  check_all_reduce(*comm, Device::cpu());
  EXPECT_EQ(routed->device().last_sequence(), nccl_ops);  // host tensors never touched NCCL
  check_split_into_halves(*comm, device_);
  check_split_into_halves(*comm, Device::cpu());
}

TEST_F(Nccl, BadArgumentsThrowNamingOpAndGroup) {
  auto w = world();
  Tensor cpu = Tensor::zeros({5}, DType::f32);
  try {
    w->all_reduce(cpu, ReduceOp::kSum);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("all_reduce on 'world'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cuda:"), std::string::npos) << e.what();
  }
  Tensor in = Tensor::zeros({5}, DType::f32, device_),
         out = Tensor::zeros({3}, DType::f32, device_);
  EXPECT_THROW(w->reduce_scatter(in, out, ReduceOp::kSum), Error);
  EXPECT_THROW(w->broadcast(in, w->size()), Error);
  EXPECT_THROW(w->send(in, -1), Error);
  EXPECT_THROW(w->all_reduce(Tensor(), ReduceOp::kSum), Error);
  EXPECT_EQ(w->last_sequence(), 0);
  w->barrier()->wait();
}

}  // namespace
}  // namespace tessera::distributed
