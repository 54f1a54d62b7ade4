#pragma once
// NcclCommunicator: a Communicator over NCCL, for CUDA tensors (CUDA builds only).
//
// Design, and why:
//  - Bootstrap over MPI: rank 0 of the MPI communicator makes an ncclUniqueId and MPI_Bcasts it;
//    every rank then joins with ncclCommInitRank on its CUDA device. The MPI communicator is
//    duplicated and kept: it gives world ranks for messages and splits the MPI side of a
//    sub-group. Sub-groups split the NCCL communicator with ncclCommSplit (no new bootstrap).
//  - Streams and events: collectives run on this communicator's own non-blocking stream, so
//    compute (on core/cuda/runtime.h's compute stream) overlaps them. Each operation records an
//    event on the compute stream and makes the communication stream wait on it (the tensor's
//    producer kernels come first), then records a completion event on the communication stream.
//  - Work::wait() makes the compute stream wait on the completion event and returns without
//    blocking the host: every consumer of a CUDA tensor is either a kernel on the compute stream
//    or a copy on the legacy default stream, which the (blocking) compute stream is ordered with.
//    barrier() is the exception: its wait blocks the host, since that is what a barrier is for.
//  - done() and completed_ns(): a watcher thread polls the completion events in issue order
//    (cudaEventQuery, with a back-off sleep) and completes the Work objects, so "done(k) implies
//    done(j < k)" holds and GradSync can measure communication time. It also holds the tensors
//    (their buffers) until the operation completed, so a buffer is never reused under NCCL.
//  - Point to point: NCCL matches a send only when its recv is running, so a ring's send and recv
//    must be in one ncclGroupStart/End. send() and recv() are therefore deferred and launched
//    together as one group when the next collective is issued or any Work is waited on; the
//    documented rule "issue the send and the recv of a ring step before waiting on either" is
//    exactly what makes that work.
//  - Watchdog: the watcher thread checks the oldest unfinished operation against its deadline
//    (issue + timeout_s) and ncclCommGetAsyncError. Past the deadline, or on an asynchronous
//    NCCL error, it asks the peers which sequence number they have issued (the protocol
//    MpiCommunicator uses, distributed/arrival_query.h, over a duplicate of the MPI
//    communicator; every watcher thread answers), calls ncclCommAbort (so the GPU kernels stop
//    spinning) and ends the job with one line naming the collective, group, sequence number,
//    time waited and the ranks that have not issued it (abort_job()).
//  - kAvg is ncclAvg; kMax ncclMax. f32 and bf16 tensors are accepted.

#include <mpi.h>
#include <nccl.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/cuda/runtime.h"
#include "distributed/arrival_query.h"
#include "distributed/communicator.h"

namespace tessera::distributed {

struct NcclOptions {
  double timeout_s = 600;        // every operation's deadline, from the moment it is issued
  int poll_max_sleep_us = 1000;  // longest back-off sleep of the watcher thread
  double query_timeout_s = 1.0;  // how long the watchdog waits for the peers' answers
};

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `comm` (MPI must be initialised): every rank passes the CUDA device it
  // drives. Throws tessera::Error naming the NCCL or CUDA error.
  NcclCommunicator(MPI_Comm comm, std::string name, int device, NcclOptions options = {});
  // Waits for the operations in flight (the watchdog still applies), then destroys the NCCL
  // communicator and the streams. Every rank destroys its communicators in the same order.
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  // MPI_COMM_WORLD, named "world", on `device`.
  static std::unique_ptr<NcclCommunicator> world(int device, NcclOptions options = {});

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  int64_t last_sequence() const override { return seq_; }
  int world_rank_of(int r) const override { return world_ranks_.at(r); }
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }

  WorkHandle all_reduce(const Tensor& t, ReduceOp op) override;
  WorkHandle reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) override;
  WorkHandle all_gather(const Tensor& input, const Tensor& output) override;
  WorkHandle broadcast(const Tensor& t, int root) override;
  WorkHandle send(const Tensor& t, int peer) override;
  WorkHandle recv(const Tensor& t, int peer) override;
  WorkHandle barrier() override;
  // ncclCommSplit for the NCCL side; the child inherits the device and options.
  std::unique_ptr<Communicator> split(int color, int key, std::string name) override;

  struct Op;       // one issued operation (nccl_communicator.cc)
  struct Flusher;  // lets a Work handle launch the deferred point-to-point group

 private:
  // A child of split(): takes ownership of an already split NCCL communicator.
  NcclCommunicator(MPI_Comm comm, ncclComm_t nccl, std::string name, int device,
                   NcclOptions options);
  void init_common(MPI_Comm comm);
  void check_tensor(const Tensor& t, const char* op, const char* arg) const;
  std::shared_ptr<Op> make_op(const char* op_name, bool collective, int64_t elements, DType dtype,
                              const std::string& detail);
  // Orders the communication stream after the compute stream (issue side).
  void begin_on_stream();
  // Records op's completion event and hands it to the watcher.
  WorkHandle submit(std::shared_ptr<Op> op);
  void flush_p2p();     // launches the deferred sends/recvs as one NCCL group
  void start_thread();  // the watcher thread, with the termination signals blocked
  void thread_main();
  [[noreturn]] void watchdog_fire(const Op& op, const std::string& why);

  std::string name_;
  NcclOptions options_;
  int device_ = 0;
  MPI_Comm mpi_ = MPI_COMM_NULL, ctrl_ = MPI_COMM_NULL;  // split() and the watchdog's questions
  ncclComm_t nccl_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;  // compute stream -> communication stream ordering
  int rank_ = 0, size_ = 1;
  std::vector<int> world_ranks_;
  std::atomic<int64_t> seq_{0};  // collectives issued (the watcher answers peers with it)
  int64_t p2p_seq_ = 0;
  std::vector<std::shared_ptr<Op>> pending_p2p_;  // issued, not launched (issuing thread only)
  Tensor barrier_scratch_;                        // one f32 on the device
  std::shared_ptr<Flusher> flusher_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Op>> in_flight_;  // launched, in issue order
  bool stop_ = false;
  std::atomic<bool> aborted_{false};
  std::unique_ptr<ArrivalQuery> arrivals_;  // watcher thread only
  std::thread thread_;
};

}  // namespace tessera::distributed
