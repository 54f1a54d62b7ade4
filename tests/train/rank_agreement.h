#pragma once
// Failing a multi-rank test without hanging its peers. An ASSERT_* that fails returns from the
// enclosing function on that rank only; its peers then block in the next collective (a barrier,
// the next Trainer's all-reduce) until the test world's deadline aborts the whole job, and the
// failure is read as a hang. So the suites under tests/train that interleave checks and
// collectives check with EXPECT_*, and where going on makes no sense every rank asks
// all_ranks_ok() at the same point and all leave together. Checks made by one rank alone (rank 0
// reading files) run in a function of their own, so an ASSERT_* there ends that function, not
// the test, and the rank still reaches the collective after it.

#include "core/tensor.h"
#include "distributed/communicator.h"

namespace tessera::train::testing_support {

// Collective over `world`: true on every rank when `ok` is true on every rank.
inline bool all_ranks_ok(distributed::Communicator& world, bool ok) {
  Tensor failed = Tensor::empty({1}, DType::f32);
  failed.data<float>()[0] = ok ? 0.0f : 1.0f;
  world.all_reduce(failed, distributed::ReduceOp::kMax)->wait();
  return failed.data<float>()[0] == 0.0f;
}

}  // namespace tessera::train::testing_support
