#pragma once
// The fixture of the multi-rank trainer tests on every device (parallel_device_test.cc,
// zero3_parallel_device_test.cc): the CPU variant runs everywhere; the CUDA variant is the NCCL
// path and needs one GPU per rank (NCCL refuses two ranks on one device), so without them it is
// skipped saying so.
#include <gtest/gtest.h>
#include <mpi.h>

#include <memory>

#include "core/allocator.h"
#include "distributed/make_communicator.h"
#include "tests/support/devices.h"

namespace tessera::train::testing_support {

class ParallelDeviceTest : public testing::DeviceTest {
 protected:
  void SetUp() override {
    testing::DeviceTest::SetUp();
    if (IsSkipped()) return;
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (device().is_cuda() && cuda_device_count() < size) {
      GTEST_SKIP() << "no CUDA device for every rank (" << size << " ranks, " << cuda_device_count()
                   << " devices; NCCL needs one device per rank)";
    }
  }

  // The world on device(); a long timeout, because the other ranks wait in a barrier while rank
  // 0 runs a one-process reference.
  std::unique_ptr<distributed::Communicator> world() const {
    distributed::CommunicatorOptions options;
    options.timeout_s = 300;
    return distributed::make_world_communicator(
        device().is_cpu() ? Device::cpu() : distributed::local_cuda_device(), options);
  }
};

}  // namespace tessera::train::testing_support
