#pragma once
// Communicator: one group of ranks and the collectives tessera's training step needs
// (docs/DESIGN.md: distributed/). Implementations: LocalCommunicator (one rank, no MPI, everything
// completes at once) and MpiCommunicator (a communication thread per group; see its header).
//
// Rules every caller follows (the same as PyTorch c10d's):
//  - Every rank of a group issues the group's collectives in the same order, with matching
//    sizes. Each collective gets the next sequence number of its group (1, 2, 3, ...); the
//    watchdog names a stuck collective by (group name, sequence number).
//  - Operations are asynchronous: they return a WorkHandle at once. The tensors passed in must
//    stay alive and must not be touched until work->wait() returned (or done() is true).
//  - Work of one communicator completes in issue order: when done() is true for one operation it
//    is true for every operation issued before it on the same communicator.
//  - Issue a communicator's operations from one thread at a time (the trainer's main thread).
//  - Tensors: contiguous f32 on the CPU (NcclCommunicator: f32 or bf16 on its CUDA device).
//
// Failure policy (docs/DESIGN.md decision 7): errors are fatal inside a step. A collective that
// misses its deadline makes the rank print one line naming it and abort the whole job; an exception
// in a rank's step goes through run_or_abort(), which prints "rank R: message" once and aborts the
// job, so no rank is left blocked in a collective its peer will never join.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/tensor.h"

namespace tessera::distributed {

enum class ReduceOp { kSum, kAvg, kMax };
const char* reduce_op_name(ReduceOp op);  // "sum", "avg", "max"

// Completion handle of one asynchronous operation. Thread-safe: the communication thread
// completes it, the issuing thread waits on it.
class Work {
 public:
  // `what` names the operation for messages: "all_reduce #12 on 'dp' (1000 f32)".
  explicit Work(std::string what);
  virtual ~Work() = default;

  // Blocks (without spinning) until the operation completed; throws tessera::Error carrying the
  // operation's name when it failed. NcclCommunicator's work overrides it: for CUDA tensors it
  // orders the device's compute stream after the operation instead of blocking the host
  // (nccl_communicator.h), which is all a consumer of the tensor on that device needs.
  virtual void wait();
  // True once completed or failed; never blocks.
  bool done() const;
  const std::string& what() const { return what_; }

  // steady-clock nanoseconds (core/timer.h now_ns()): when the communication engine started the
  // operation and when it completed; 0 until then. GradSync uses these to measure communication
  // time apart from waiting time.
  int64_t started_ns() const;
  int64_t completed_ns() const;

  // For implementations.
  void mark_started(int64_t ns);
  void complete(int64_t ns);
  void fail(std::string message, int64_t ns);
  // wait() aborts the job if still not done this long after this time (a backstop behind the
  // watchdog of the implementation, for a communication thread that stopped responding).
  void set_backstop(int64_t deadline_ns) { backstop_ns_ = deadline_ns; }

 private:
  const std::string what_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::string error_;
  int64_t started_ns_ = 0, completed_ns_ = 0;
  int64_t backstop_ns_ = 0;
};
using WorkHandle = std::shared_ptr<Work>;

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;  // 0 .. size()-1 within this group
  virtual int size() const = 0;
  virtual const std::string& name() const = 0;  // "world", "dp", "tp", ...
  // Sequence number of the last collective issued on this group (0 before the first).
  virtual int64_t last_sequence() const = 0;
  // Rank of group rank r in the world communicator (for messages).
  virtual int world_rank_of(int r) const = 0;

  // In place: every rank ends with op over all ranks' t. kAvg is the sum divided by size().
  virtual WorkHandle all_reduce(const Tensor& t, ReduceOp op) = 0;
  // input: (size() * n) on every rank; output: (n). Rank r receives op over all ranks of
  // input[r*n, (r+1)*n). input and output must not overlap.
  virtual WorkHandle reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) = 0;
  // input: (n); output: (size() * n), rank r's input lands at output[r*n, (r+1)*n). In place
  // when input is exactly that range of output (no send buffer; ZeRO-3's bf16 gathers).
  virtual WorkHandle all_gather(const Tensor& input, const Tensor& output) = 0;
  // In place: every rank ends with root's t.
  virtual WorkHandle broadcast(const Tensor& t, int root) = 0;
  // Point to point (rings): a send to `peer` matches that peer's recv from this rank; several
  // messages between the same pair match in issue order. Not collectives: they have their own
  // counter and only the two ranks involved issue them. Issue the send and the recv of a ring
  // step before waiting on either.
  virtual WorkHandle send(const Tensor& t, int peer) = 0;
  virtual WorkHandle recv(const Tensor& t, int peer) = 0;
  virtual WorkHandle barrier() = 0;

  // A sub-group: ranks passing the same color form one group, ordered by key. Collective over
  // this communicator (every rank calls it, in the same order as its collectives), synchronous.
  virtual std::unique_ptr<Communicator> split(int color, int key, std::string name) = 0;

  // Ends the whole job: prints "rank R: message" once (R = world rank) and calls MPI_Abort (or
  // exits with status 1 without MPI). Never returns.
  [[noreturn]] virtual void abort(const std::string& message);
};

// Process-wide: prints "rank R: message" to stderr at most once per process, then MPI_Abort on
// MPI_COMM_WORLD (exit status 1) when MPI is initialised, else _Exit(1). A second caller (another
// thread) does not print again; it waits for the process to end.
[[noreturn]] void abort_job(const std::string& message);

// For mains: runs fn and returns its result. When fn throws, prints "rank R: what()" once; in a
// job of several ranks it then aborts the job (MPI_Abort, exit status 1) so that no peer stays
// blocked in a collective; in a single process it returns 1 so destructors still run.
int run_or_abort(const std::function<int()>& fn);

// This process's rank in the world (MPI_COMM_WORLD when MPI is initialised, else the launcher's
// environment: OMPI_COMM_WORLD_RANK, PMI_RANK, SLURM_PROCID; 0 when none).
int world_rank_for_messages();
// True when a launcher (mpirun, srun) started this process as part of a job.
bool launched_by_mpi();

// For implementations: starts a communication thread with the termination signals (SIGINT,
// SIGTERM, SIGHUP, SIGUSR1, SIGUSR2) blocked in it, so a stop signal is never taken by a thread
// inside MPI or NCCL (core/preemption.h takes them on a thread of its own).
std::thread start_thread_blocking_signals(std::function<void()> body);

// Shared argument checks, for implementations: a defined f32 tensor on any device (groups that
// only copy, or route by device); a contiguous f32 CPU tensor with an MPI-sized count.
void check_f32(const Tensor& t, const char* op, const char* arg, const std::string& group);
void check_cpu_f32(const Tensor& t, const char* op, const char* arg, const std::string& group);
// The same for the operations that only move data (all_gather, broadcast, send, recv): f32 or
// bf16 (moved as its bits; no arithmetic). check_same_dtype: an all_gather's input and output.
void check_movable(const Tensor& t, const char* op, const char* arg, const std::string& group);
void check_cpu_movable(const Tensor& t, const char* op, const char* arg, const std::string& group);
void check_same_dtype(const Tensor& input, const Tensor& output, const char* op,
                      const std::string& group);

}  // namespace tessera::distributed
