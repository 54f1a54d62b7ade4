#pragma once
// LocalCommunicator: a group of one rank, without MPI, so that training, tests and tools run as
// a plain process (no mpirun). Every operation completes before it returns: all_reduce and
// broadcast leave the tensor as it is (the average of one value is itself), reduce_scatter and
// all_gather copy input to output, a send to self is queued (copied) and the next recv from self
// takes it. Argument checks are MpiCommunicator's (sizes, roots, peers), so mistakes show up
// locally too, except that f32 tensors on any device are taken: a group of one only copies, so a
// single-process run on a GPU needs no NCCL.

#include <deque>
#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace tessera::distributed {

class LocalCommunicator final : public Communicator {
 public:
  explicit LocalCommunicator(std::string name = "world") : name_(std::move(name)) {}

  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }
  int64_t last_sequence() const override { return seq_; }
  int world_rank_of(int r) const override { return world_rank_for_messages(); }

  WorkHandle all_reduce(const Tensor& t, ReduceOp op) override;
  WorkHandle reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) override;
  WorkHandle all_gather(const Tensor& input, const Tensor& output) override;
  WorkHandle broadcast(const Tensor& t, int root) override;
  WorkHandle send(const Tensor& t, int peer) override;
  WorkHandle recv(const Tensor& t, int peer) override;
  WorkHandle barrier() override;
  std::unique_ptr<Communicator> split(int color, int key, std::string name) override;

 private:
  WorkHandle completed(const char* op, int64_t numel);

  std::string name_;
  int64_t seq_ = 0;
  std::deque<Tensor> sent_to_self_;
};

}  // namespace tessera::distributed
