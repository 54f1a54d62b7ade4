// Collectives of MpiCommunicator on 2 and 4 ranks (ctest distributed_collectives_test and
// distributed_collectives_test_np4), against results every rank computes locally from the
// rank-keyed inputs.
#include <gtest/gtest.h>

#include "distributed/local_communicator.h"
#include "distributed/make_communicator.h"
#include "distributed/mpi_communicator.h"
#include "distributed/routed_communicator.h"
#include "tests/distributed/collective_checks.h"
#include "tests/distributed/mpi_test_env.h"

namespace tessera::distributed {
namespace {

using namespace testing;  // NOLINT: the shared checks

// The bodies are shared with the NCCL test (collective_checks.h); here on CPU tensors.
const Device kCpu = Device::cpu();

TEST(Collectives, AllReduceSumAvgMax) {
  check_all_reduce(*test_world(), kCpu);
}
TEST(Collectives, ReduceScatter) {
  check_reduce_scatter(*test_world(), kCpu);
}
TEST(Collectives, AllGather) {
  check_all_gather(*test_world(), kCpu);
}
TEST(Collectives, BroadcastFromEveryRoot) {
  check_broadcast_from_every_root(*test_world(), kCpu);
}
TEST(Collectives, SendRecvRing) {
  check_send_recv_ring(*test_world(), kCpu);
}
TEST(Collectives, BarrierAndSequenceNumbers) {
  check_barrier_and_sequence_numbers(*test_world(), kCpu);
}
TEST(Collectives, ManyInFlightCompleteInIssueOrder) {
  check_many_in_flight_complete_in_issue_order(*test_world(), kCpu);
}
TEST(Collectives, SplitIntoHalves) {
  check_split_into_halves(*test_world(), kCpu);
}

// RoutedCommunicator sends host tensors to its host transport only. Without a GPU both
// transports are MPI here; the NCCL test checks the CUDA half of the routing on a GPU machine.
TEST(Collectives, RoutedSendsHostTensorsToTheHostTransport) {
  RoutedCommunicator routed(test_world(), test_world());
  check_all_reduce(routed, kCpu);
  check_all_gather(routed, kCpu);
  check_send_recv_ring(routed, kCpu);
  EXPECT_GT(routed.host().last_sequence(), 0);
  EXPECT_EQ(routed.device().last_sequence(), 0);
  EXPECT_EQ(routed.last_sequence(), routed.host().last_sequence());
  auto half = routed.split(routed.rank() % 2, routed.rank(), "half");
  auto* routed_half = dynamic_cast<RoutedCommunicator*>(half.get());
  ASSERT_NE(routed_half, nullptr);
  EXPECT_EQ(routed_half->device().name(), "half");
  check_split_into_halves(routed, kCpu);
}

TEST(Collectives, RoutedRejectsTransportsOfDifferentGroups) {
  try {
    RoutedCommunicator routed(test_world(), std::make_unique<LocalCommunicator>("solo"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'solo' rank 0 of 1"), std::string::npos) << e.what();
  }
}

// The factory the trainer uses: CPU tensors under mpirun get MPI.
TEST(Collectives, FactoryPicksMpiForCpuTensors) {
  CommunicatorOptions options;
  options.timeout_s = 30;
  auto comm = make_world_communicator(Device::cpu(), options);
  EXPECT_NE(dynamic_cast<MpiCommunicator*>(comm.get()), nullptr);
  check_all_reduce(*comm, kCpu);
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
