#pragma once
// Testing hook for the failure path of several ranks (docs/DESIGN.md decision 7), in the manner of
// checkpoint/commit.h's TESSERA_CKPT_CRASH_AT: TESSERA_FAIL_IN_BACKWARD=RANK:STEP makes world rank
// RANK fail inside the backward of step STEP, once some but not all gradient buckets of that step
// are in flight (so the peers stay blocked in the step, waiting for the rest).
// It fails the way a rank fails whose collective took another path than its peers' (issue 20: an
// MPI_Reduce_scatter_block that Open MPI failed on some ranks under a memory limit): it first
// starts an all-reduce on the world communicator that no other rank will join, then throws. The
// job must then end with this rank's message, not hang in a destructor waiting on that
// collective (tests/train/rank_failure_test.sh).

#include <cstdint>

#include "distributed/communicator.h"

namespace tessera::train {

// No-op unless TESSERA_FAIL_IN_BACKWARD names this rank (world.rank()) and `step`; then starts the
// stray all-reduce and throws tessera::Error "injected failure in backward ...". A malformed value
// is an error naming the variable.
// launched of `buckets` gradient buckets are in flight (for the message).
void fail_in_backward_if_asked(distributed::Communicator& world, int64_t step, int64_t launched,
                               int64_t buckets);

}  // namespace tessera::train
