#include "distributed/communicator.h"

#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/timer.h"

namespace tessera::distributed {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kMax:
      return "max";
  }
  return "?";
}

Work::Work(std::string what) : what_(std::move(what)) {}

void Work::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!done_) {
    if (backstop_ns_ == 0) {
      cv_.wait(lock);
      continue;
    }
    // Wake now and then to check the backstop; the implementation's watchdog fires first.
    cv_.wait_for(lock, std::chrono::seconds(1));
    if (!done_ && now_ns() > backstop_ns_) {
      lock.unlock();
      abort_job(absl::StrCat(what_,
                             ": still not complete long after its deadline and the "
                             "communication thread's watchdog did not fire; aborting"));
    }
  }
  if (!error_.empty()) throw Error(absl::StrCat(what_, " failed: ", error_));
}

bool Work::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

int64_t Work::started_ns() const {
  std::lock_guard<std::mutex> lock(mu_);
  return started_ns_;
}

int64_t Work::completed_ns() const {
  std::lock_guard<std::mutex> lock(mu_);
  return completed_ns_;
}

void Work::mark_started(int64_t ns) {
  std::lock_guard<std::mutex> lock(mu_);
  started_ns_ = ns;
}

void Work::complete(int64_t ns) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_ns_ == 0) started_ns_ = ns;
    completed_ns_ = ns;
    done_ = true;
  }
  cv_.notify_all();
}

void Work::fail(std::string message, int64_t ns) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_ns_ == 0) started_ns_ = ns;
    completed_ns_ = ns;
    error_ = message.empty() ? "unknown error" : std::move(message);
    done_ = true;
  }
  cv_.notify_all();
}

void Communicator::abort(const std::string& message) {
  abort_job(absl::StrCat("[group '", name(), "'] ", message));
}

namespace {

bool mpi_active() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

std::atomic<bool> g_aborting{false};

}  // namespace

int world_rank_for_messages() {
  if (mpi_active()) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
  }
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    int r = env_int(name, -1);
    if (r >= 0) return r;
  }
  return 0;
}

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"}) {
    if (std::getenv(name)) return true;
  }
  return false;
}

void abort_job(const std::string& message) {
  if (g_aborting.exchange(true)) {
    // Another thread is already ending the process; it prints and aborts.
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::string line = absl::StrCat("rank ", world_rank_for_messages(), ": ", message, "\n");
  // One write(2) so that lines of several ranks interleave whole.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
  std::fflush(stdout);
  if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

int run_or_abort(const std::function<int()>& fn) {
  std::string message;
  try {
    return fn();
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message = "unknown exception";
  }
  int world_size = 1;
  if (mpi_active()) MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  if (world_size > 1) abort_job(message);
  std::string line = absl::StrCat("rank ", world_rank_for_messages(), ": ", message, "\n");
  std::fputs(line.c_str(), stderr);
  return 1;
}

std::thread start_thread_blocking_signals(std::function<void()> body) {
  sigset_t block, old;
  sigemptyset(&block);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&block, s);
  pthread_sigmask(SIG_BLOCK, &block, &old);  // the new thread inherits this mask
  std::thread thread(std::move(body));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return thread;
}

void check_f32(const Tensor& t, const char* op, const char* arg, const std::string& group) {
  TESSERA_CHECK(t.defined(), op, " on '", group, "': ", arg, " is undefined");
  TESSERA_CHECK(t.dtype() == DType::f32, op, " on '", group, "': ", arg, " must be f32, got ",
                t.describe());
}

void check_cpu_f32(const Tensor& t, const char* op, const char* arg, const std::string& group) {
  TESSERA_CHECK(t.defined(), op, " on '", group, "': ", arg, " is undefined");
  TESSERA_CHECK(t.dtype() == DType::f32 && t.device().is_cpu(), op, " on '", group, "': ", arg,
                " must be f32 on the CPU, got ", t.describe(),
                t.dtype() == DType::bf16
                    ? " (bf16 is moved (all_gather, broadcast, send, recv), never reduced here)"
                    : "");
  TESSERA_CHECK(t.numel() <= INT32_MAX, op, " on '", group, "': ", arg, " has ", t.numel(),
                " elements; MPI counts are int (split it)");
}

void check_movable(const Tensor& t, const char* op, const char* arg, const std::string& group) {
  TESSERA_CHECK(t.defined(), op, " on '", group, "': ", arg, " is undefined");
  TESSERA_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::bf16, op, " on '", group, "': ", arg,
                " must be f32 or bf16, got ", t.describe());
}

void check_cpu_movable(const Tensor& t, const char* op, const char* arg, const std::string& group) {
  check_movable(t, op, arg, group);
  TESSERA_CHECK(t.device().is_cpu(), op, " on '", group, "': ", arg, " must be on the CPU, got ",
                t.describe());
  TESSERA_CHECK(t.numel() <= INT32_MAX, op, " on '", group, "': ", arg, " has ", t.numel(),
                " elements; MPI counts are int (split it)");
}

void check_same_dtype(const Tensor& input, const Tensor& output, const char* op,
                      const std::string& group) {
  TESSERA_CHECK(input.dtype() == output.dtype(), op, " on '", group, "': input ", input.describe(),
                " and output ", output.describe(),
                " must have one dtype (no conversion in transit)");
}

}  // namespace tessera::distributed
