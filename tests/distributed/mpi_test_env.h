#pragma once
// For the multi-rank GoogleTest suites: MPI is initialised (MPI_THREAD_MULTIPLE) before the first
// test and finalised after the last through a global test environment, because the shared test
// main (tests/support/test_main.cc) knows nothing about MPI. Include from exactly one file per
// test binary.

#include <gtest/gtest.h>

#include <memory>

#include "distributed/mpi_communicator.h"

namespace tessera::distributed::testing {

class MpiTestEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { env_ = std::make_unique<MpiEnvironment>(); }
  void TearDown() override { env_.reset(); }

 private:
  std::unique_ptr<MpiEnvironment> env_;
};

inline const bool kMpiTestEnvironmentRegistered =
    (::testing::AddGlobalTestEnvironment(new MpiTestEnvironment), true);

// The world communicator with a test-sized deadline: a hang aborts in seconds (naming the
// collective) instead of running into CTest's timeout.
inline std::unique_ptr<MpiCommunicator> test_world(double timeout_s = 30) {
  MpiOptions options;
  options.timeout_s = timeout_s;
  return MpiCommunicator::world(options);
}

// Rank-keyed test values: small integers, so sums and averages over 2 or 4 ranks are exact in
// f32 whatever order MPI reduces in.
inline float value_of(int rank, int64_t i) {
  return float((rank + 1) * 1000 + (i % 997));
}

}  // namespace tessera::distributed::testing
