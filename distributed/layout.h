#pragma once
// ParallelLayout: the world's ranks arranged as data-parallel replicas of tensor-parallel groups.
//
// With world size W and tensor_parallel T (W divisible by T):
//   TP group g = world ranks g*T .. g*T+T-1 (adjacent: on one machine when ranks are placed by
//               core/socket, so the chatty TP all-reduces stay inside it), tp_rank = rank % T;
//   DP group j = world ranks j, j+T, j+2T, ... (the ranks holding the same TP shard),
//               dp_rank = rank / T, dp_size = W / T.
// The two sub-communicators are built with Communicator::split (MPI_Comm_split for MPI) and
// owned by the layout; the world communicator is borrowed and must outlive it. A group of one
// rank is a LocalCommunicator (no thread, no MPI traffic). Constructing a layout is collective
// over the world: every rank constructs it with the same T.

#include <memory>
#include <string>

#include "distributed/communicator.h"

namespace tessera::distributed {

class ParallelLayout {
 public:
  // Throws tessera::Error when T < 1 or T does not divide the world size.
  ParallelLayout(Communicator& world, int tensor_parallel);
  // One process: world, dp and tp are LocalCommunicators (1 x 1).
  static ParallelLayout local();

  ParallelLayout(ParallelLayout&&) = default;
  ParallelLayout& operator=(ParallelLayout&&) = default;

  Communicator& world() const { return *world_; }
  Communicator& dp() const { return *dp_; }
  Communicator& tp() const { return *tp_; }

  int world_rank() const { return world_->rank(); }
  int world_size() const { return world_->size(); }
  int dp_rank() const { return dp_->rank(); }
  int dp_size() const { return dp_->size(); }
  int tp_rank() const { return tp_->rank(); }
  int tp_size() const { return tp_->size(); }

  // "world 8 = dp 4 x tp 2; rank 5: dp 2, tp 1"
  std::string describe() const;

 private:
  ParallelLayout() = default;
  std::unique_ptr<Communicator> owned_world_;  // only for local()
  Communicator* world_ = nullptr;
  std::unique_ptr<Communicator> dp_, tp_;
};

}  // namespace tessera::distributed
