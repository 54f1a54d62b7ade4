#pragma once
// MpiCommunicator: a Communicator (communicator.h) over an MPI communicator, for contiguous f32
// CPU tensors.
//
// Contract, beyond the rules of communicator.h:
//  - The issuing thread only queues an operation and gets its WorkHandle; one communication
//    thread per MpiCommunicator starts the operations in issue order with non-blocking MPI calls
//    and drives them without spinning a core. Work completes in issue order.
//  - Collectives of at least MpiOptions::bulk_min_bytes first wait (non-blocking) until every
//    rank has issued them, then run MPI's blocking algorithm (faster on large messages).
//  - Watchdog: an operation unfinished `timeout_s` after it was issued makes the rank print one
//    line naming the collective, the group, its sequence number, and the ranks that have not
//    issued it, then MPI_Abort the job.
//  - kAvg is the sum divided by size().
//  - MPI must provide MPI_THREAD_MULTIPLE: initialise it through MpiEnvironment, which checks.
//
// Ownership: the constructor duplicates the given MPI communicator four times (`base` for split,
// `data` for the traffic, `ctrl` for the watchdog's questions, `bulk` for the blocking
// collectives); the destructor frees them. The caller keeps its own communicator. Tensors are
// borrowed until their work completed.
//
// Threads: issue operations, split() and destroy from one thread at a time; a WorkHandle may be
// waited on from any thread. The communication thread blocks SIGINT, SIGTERM, SIGHUP, SIGUSR1
// and SIGUSR2, so a stop signal is never taken inside MPI.
//
// Why it is built this way, and the measurements behind it: docs/DISTRIBUTED.md.

#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "distributed/arrival_query.h"
#include "distributed/communicator.h"

namespace tessera::distributed {

// Initialises MPI with MPI_THREAD_MULTIPLE for the life of the object (one per process, in main,
// outliving every MpiCommunicator); finalises it when this object initialised it. Throws
// tessera::Error when the MPI library provides a lower thread level.
class MpiEnvironment {
 public:
  MpiEnvironment(int* argc = nullptr, char*** argv = nullptr);
  ~MpiEnvironment();
  MpiEnvironment(const MpiEnvironment&) = delete;
  MpiEnvironment& operator=(const MpiEnvironment&) = delete;

 private:
  bool owns_ = false;
};

struct MpiOptions {
  double timeout_s = 600;        // every operation's deadline, from the moment it is issued
  int poll_max_sleep_us = 1000;  // longest back-off sleep between MPI_Testsome polls
  // Collectives moving at least this many bytes take the "bulk" path (docs/DISTRIBUTED.md):
  // a non-blocking arrival barrier, then MPI's blocking algorithm. SIZE_MAX turns it off.
  size_t bulk_min_bytes = size_t(1) << 20;
  double query_timeout_s = 1.0;  // how long the watchdog waits for peers' answers
};

class MpiCommunicator final : public Communicator {
 public:
  // Duplicates `comm` (MPI must be initialised, e.g. by MpiEnvironment). Collective over comm.
  MpiCommunicator(MPI_Comm comm, std::string name, MpiOptions options = {});
  // Finishes the operations still in flight (the watchdog still applies), stops the thread and
  // frees the duplicated communicators. Collective in effect: every rank destroys its
  // communicators in the same order.
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  // MPI_COMM_WORLD, named "world".
  static std::unique_ptr<MpiCommunicator> world(MpiOptions options = {});

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  int64_t last_sequence() const override { return seq_.load(); }
  int world_rank_of(int r) const override { return world_ranks_.at(r); }
  const MpiOptions& options() const { return options_; }

  WorkHandle all_reduce(const Tensor& t, ReduceOp op) override;
  WorkHandle reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) override;
  WorkHandle all_gather(const Tensor& input, const Tensor& output) override;
  WorkHandle broadcast(const Tensor& t, int root) override;
  WorkHandle send(const Tensor& t, int peer) override;
  WorkHandle recv(const Tensor& t, int peer) override;
  WorkHandle barrier() override;
  // The child inherits this communicator's options.
  std::unique_ptr<Communicator> split(int color, int key, std::string name) override;

  struct Op;  // one queued operation (mpi_communicator.cc)

 private:
  WorkHandle enqueue(std::unique_ptr<Op> op);
  WorkHandle point_to_point(bool sending, const Tensor& t, int peer);  // send() and recv()
  void thread_main();
  void start(Op& op);
  void run_bulk(Op& op);
  void finish(Op& op, int64_t now);
  [[noreturn]] void watchdog_fire(const Op& op, int64_t now);

  std::string name_;
  MpiOptions options_;
  MPI_Comm base_ = MPI_COMM_NULL, data_ = MPI_COMM_NULL, ctrl_ = MPI_COMM_NULL,
           bulk_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::vector<int> world_ranks_;

  std::atomic<int64_t> seq_{0};  // collectives issued (the last one's sequence number)
  int64_t p2p_seq_ = 0;          // point-to-point operations issued

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Op>> queue_;  // issued, not yet taken by the thread
  bool stop_ = false;

  // Communication thread only.
  std::deque<std::unique_ptr<Op>> in_flight_;  // started, in issue order
  std::unique_ptr<ArrivalQuery> arrivals_;     // the watchdog's questions on ctrl_

  std::thread thread_;
};

}  // namespace tessera::distributed
