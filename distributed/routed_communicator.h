#pragma once
// RoutedCommunicator: one group of ranks seen through two transports, chosen per operation by
// where the tensor lives: CUDA tensors go to the device communicator (NCCL), host tensors to the
// host communicator (MPI, or LocalCommunicator for one process). This is how the trainer "picks
// NCCL for CUDA tensors and MPI for CPU tensors without the model knowing": gradients, TP
// partial sums and the contrastive loss's gathers are device tensors and ride NCCL, while the
// step's few host values (the averaged loss, the stop-signal vote, the checkpoint commit's
// agreement) ride MPI, never paying for a device round trip.
//
// Ordering: each transport keeps its own sequence numbers and watchdog; since every rank runs
// the same code, every rank issues the same operations on each transport in the same order, which
// is all either needs. last_sequence() is the sum of both (monotonic, for messages only).
// barrier() is the host transport's (a barrier is about processes, not streams).

#include <memory>
#include <string>

#include "distributed/communicator.h"

namespace tessera::distributed {

class RoutedCommunicator final : public Communicator {
 public:
  // Both communicators span the same ranks in the same order (checked: sizes and ranks agree).
  RoutedCommunicator(std::unique_ptr<Communicator> host, std::unique_ptr<Communicator> device);

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  const std::string& name() const override { return host_->name(); }
  int64_t last_sequence() const override;
  int world_rank_of(int r) const override { return host_->world_rank_of(r); }

  WorkHandle all_reduce(const Tensor& t, ReduceOp op) override;
  WorkHandle reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) override;
  WorkHandle all_gather(const Tensor& input, const Tensor& output) override;
  WorkHandle broadcast(const Tensor& t, int root) override;
  WorkHandle send(const Tensor& t, int peer) override;
  WorkHandle recv(const Tensor& t, int peer) override;
  WorkHandle barrier() override;
  // Splits both transports (host first, then device: the same order on every rank).
  std::unique_ptr<Communicator> split(int color, int key, std::string name) override;

  Communicator& host() { return *host_; }
  Communicator& device() { return *device_; }

 private:
  // The transport for an operation on `t` (and `other`, which must live on the same device).
  Communicator& route(const Tensor& t, const Tensor* other, const char* op);

  std::unique_ptr<Communicator> host_;
  std::unique_ptr<Communicator> device_;
};

}  // namespace tessera::distributed
