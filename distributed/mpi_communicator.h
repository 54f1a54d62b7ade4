#pragma once
// MpiCommunicator: a Communicator over an MPI communicator, for CPU tensors.
//
// Design, and why:
//  - One communication thread per MpiCommunicator. The issuing thread only queues an operation
//    and returns a WorkHandle; the communication thread starts queued operations in issue order
//    with non-blocking MPI calls (MPI_Iallreduce, MPI_Ireduce_scatter_block, MPI_Iallgather,
//    MPI_Ibcast, MPI_Isend/Irecv, MPI_Ibarrier) and drives them with MPI_Testsome. Open MPI's
//    non-blocking collectives (libnbc) advance only inside MPI calls ("OMPI progress: no" in
//    ompi_info), so without a thread that keeps calling into MPI, a bucket all-reduce issued
//    during backward would mostly run when the trainer finally waits on it: no overlap. Starting
//    every operation non-blocking (rather than running blocking calls one by one) also lets the
//    send and the recv of a ring step, and several gradient buckets, be in flight together.
//  - No busy spinning: while operations are in flight the thread polls with a back-off (a few
//    sched_yield()s, then sleeps of 1/16 of the time since the last completion, at most
//    `poll_max_sleep_us`), so a completion is noticed at most ~6 % late; with nothing in flight it
//    sleeps on a condition variable (waking every 20 ms to answer watchdog queries). Blocking MPI
//    calls would be simpler but Open MPI's blocking waits spin a core at 100 % inside
//    opal_progress, which on a CPU trainer steals a core from the compute threads.
//    bench/distributed/allreduce_bench.cc measures both the bandwidth and the CPU a waiting rank
//    burns, for this design and for a plain blocking MPI_Allreduce.
//  - Completion in issue order: an operation is reported done only after every earlier one of
//    the same communicator (like a CUDA stream), so "done(k) implies done(j < k)" holds.
//  - MPI must provide MPI_THREAD_MULTIPLE (the main thread creates communicators while
//    communication threads run); MpiEnvironment checks it and fails clearly otherwise.
//  - Each MpiCommunicator duplicates its MPI communicator three times (four with `bulk`): `data`
//  (the collectives and
//    point-to-point traffic, used only by the communication thread), `ctrl` (the watchdog's
//    arrival queries, also only that thread) and `base` (split(), only the issuing thread). MPI
//    forbids concurrent collectives on one communicator from two threads; separate contexts
//    also keep our traffic apart from anybody else's.
//  - Watchdog: every operation has a deadline (issue time + `timeout_s`). The communication
//    thread checks the oldest unfinished operation on each poll. Past its deadline the rank asks
//    the other ranks of the group, over `ctrl`, which sequence number they have issued last (every
//    communication thread answers such queries, even while its main thread computes), then prints
//    ONE line naming the collective, the group, the sequence number, the elements, the time waited
//    and the ranks that have not issued it (or that did not answer), and calls MPI_Abort so no
//    rank stays blocked. The queries cost nothing until a deadline passes. The question and
//    answer protocol is distributed/arrival_query.h, shared with NcclCommunicator.
//  - Bulk collectives (>= `bulk_min_bytes`, 1 MiB by default): Open MPI's non-blocking
//    all-reduce (libnbc) reaches about half the bus bandwidth of its blocking one (tuned) on
//    large messages here (bench/distributed/allreduce_bench.cc measures both). So a large
//    collective starts as a non-blocking MPI_Ibarrier on `data` (the "arrival" phase: polled with
//    back-off, watched by the watchdog, so a late or missing rank costs no CPU and gets named);
//    once every rank has arrived and the operation is the oldest in flight, the thread runs the
//    blocking collective on a fourth duplicate, `bulk`. Every rank runs bulk collectives in issue
//    order, so their order matches; the blocking call spins only for the transfer itself (all
//    peers are there), and it keeps progressing the other requests in flight.
//  - kAvg is MPI_SUM followed by a division by size() on the communication thread (MPI has no
//    average).
//
// Signals (Ctrl-C, SIGTERM): Open MPI's mpirun, on SIGINT or SIGTERM, sends SIGTERM to every
// rank and SIGKILL to ranks still alive shortly after, then exits non-zero. Measured here:
// `kill -TERM <mpirun>` during bench_allreduce (2 ranks) -> every rank gone within 2.6 s, mpirun
// exit status 1. The communication threads block SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2,
// so a handler the trainer installs (e.g. "save, then exit with the resume status") runs on a
// trainer thread; without one the default action ends the rank. A rank that ends while its peers
// sit in a collective makes mpirun end the job.

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
  // Collectives moving at least this many bytes take the "bulk" path (see the design notes):
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
