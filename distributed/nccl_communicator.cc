#include "distributed/nccl_communicator.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/timer.h"
#include "distributed/nccl_internal.h"

namespace tessera::distributed {

using nccl_detail::nccl_check;

namespace {

using Flusher = NcclCommunicator::Flusher;

class NcclWork final : public Work {
 public:
  NcclWork(std::string what, int device, bool blocking, std::shared_ptr<nccl_detail::Event> done,
           std::shared_ptr<Flusher> flusher)
      : Work(std::move(what)),
        device_(device),
        blocking_(blocking),
        done_event_(std::move(done)),
        flusher_(std::move(flusher)) {}

  void wait() override {
    {
      std::lock_guard<std::mutex> lock(flusher_->mu);
      if (flusher_->flush) flusher_->flush();
    }
    if (blocking_ || done()) {
      Work::wait();  // host wait; throws when the operation failed
      return;
    }
    cuda::check(cudaStreamWaitEvent(cuda::compute_stream(device_), done_event_->e, 0),
                absl::StrCat(what(), ": cudaStreamWaitEvent").c_str());
  }

 private:
  const int device_;
  const bool blocking_;
  std::shared_ptr<nccl_detail::Event> done_event_;
  std::shared_ptr<Flusher> flusher_;
};

}  // namespace

// Lets a Work handle launch its communicator's deferred point-to-point group before waiting;
// the communicator clears `flush` when it is destroyed.
// --- construction ----------------------------------------------------------------------------

void NcclCommunicator::init_common(MPI_Comm comm) {
  TESSERA_CHECK(options_.timeout_s > 0, "NcclCommunicator '", name_, "': timeout_s must be > 0");
  int provided = 0;
  MPI_Query_thread(&provided);
  TESSERA_CHECK(provided == MPI_THREAD_MULTIPLE, "NcclCommunicator '", name_,
                "': MPI must be initialised with MPI_THREAD_MULTIPLE (use MpiEnvironment)");
  MPI_Comm_dup(comm, &mpi_);
  MPI_Comm_dup(comm, &ctrl_);
  MPI_Comm_set_errhandler(ctrl_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(mpi_, &rank_);
  MPI_Comm_size(mpi_, &size_);
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  world_ranks_.resize(size_);
  MPI_Allgather(&world_rank, 1, MPI_INT, world_ranks_.data(), 1, MPI_INT, mpi_);
  arrivals_ = std::make_unique<ArrivalQuery>(ctrl_, &seq_, world_ranks_, name_);
  const int devices = cuda_device_count();
  TESSERA_CHECK(device_ >= 0 && device_ < devices, "NcclCommunicator '", name_, "' rank ", rank_,
                ": cuda:", device_, " does not exist (", devices, " CUDA devices)");
  cuda::check(cudaSetDevice(device_), "NcclCommunicator: cudaSetDevice");
  cuda::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
              "NcclCommunicator: cudaStreamCreate");
  cuda::check(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming),
              "NcclCommunicator: cudaEventCreate");
}

NcclCommunicator::NcclCommunicator(MPI_Comm comm, std::string name, int device, NcclOptions options)
    : name_(std::move(name)), options_(options), device_(device) {
  init_common(comm);
  // Rank 0's id, and whether it could make one (so the others fail instead of hanging).
  struct {
    int ok = 0;
    ncclUniqueId id;
  } boot;
  std::string boot_error;
  if (rank_ == 0) {
    ncclResult_t r = ncclGetUniqueId(&boot.id);
    boot.ok = r == ncclSuccess;
    if (!boot.ok) boot_error = ncclGetErrorString(r);
  }
  MPI_Bcast(&boot, sizeof(boot), MPI_BYTE, 0, mpi_);
  TESSERA_CHECK(boot.ok, "NcclCommunicator '", name_, "': ncclGetUniqueId failed on rank 0",
                boot_error.empty() ? "" : ": ", boot_error);
  nccl_check(ncclCommInitRank(&nccl_, size_, boot.id, rank_),
             absl::StrCat("NcclCommunicator '", name_, "' rank ", rank_, " (cuda:", device_,
                          "): ncclCommInitRank"));
  barrier_scratch_ = Tensor::zeros({1}, DType::f32, Device::cuda(device_));
  start_thread();
}

NcclCommunicator::NcclCommunicator(MPI_Comm comm, ncclComm_t nccl, std::string name, int device,
                                   NcclOptions options)
    : name_(std::move(name)), options_(options), device_(device), nccl_(nccl) {
  init_common(comm);
  int nccl_rank = -1, nccl_size = -1;
  ncclCommUserRank(nccl_, &nccl_rank);
  ncclCommCount(nccl_, &nccl_size);
  TESSERA_CHECK(nccl_rank == rank_ && nccl_size == size_, "NcclCommunicator split '", name_,
                "': NCCL rank ", nccl_rank, "/", nccl_size, " differs from MPI's ", rank_, "/",
                size_);
  barrier_scratch_ = Tensor::zeros({1}, DType::f32, Device::cuda(device_));
  start_thread();
}

void NcclCommunicator::start_thread() {
  // Like MpiCommunicator's thread, the watcher blocks the termination signals, so a handler the
  // trainer installs runs on a trainer thread.
  thread_ = start_thread_blocking_signals([this] { thread_main(); });
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::world(int device, NcclOptions options) {
  return std::make_unique<NcclCommunicator>(MPI_COMM_WORLD, "world", device, options);
}

NcclCommunicator::~NcclCommunicator() {
  try {
    flush_p2p();
  } catch (const std::exception& e) {
    abort_job(absl::StrCat("NcclCommunicator '", name_, "': ", e.what()));
  }
  if (flusher_) {
    std::lock_guard<std::mutex> lock(flusher_->mu);
    flusher_->flush = nullptr;
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();  // returns once everything in flight completed
  if (nccl_) ncclCommDestroy(nccl_);
  if (ready_) cudaEventDestroy(ready_);
  if (stream_) cudaStreamDestroy(stream_);
  if (mpi_ != MPI_COMM_NULL) MPI_Comm_free(&mpi_);
  if (ctrl_ != MPI_COMM_NULL) MPI_Comm_free(&ctrl_);
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key, std::string name) {
  flush_p2p();
  ncclComm_t child = nullptr;
  cuda::check(cudaSetDevice(device_), "split: cudaSetDevice");
  nccl_check(ncclCommSplit(nccl_, color, key, &child, nullptr),
             absl::StrCat("split of '", name_, "' into '", name, "': ncclCommSplit"));
  MPI_Comm sub = MPI_COMM_NULL;
  MPI_Comm_split(mpi_, color, key, &sub);
  std::unique_ptr<Communicator> result(
      new NcclCommunicator(sub, child, std::move(name), device_, options_));
  MPI_Comm_free(&sub);
  return result;
}

// --- issuing side ----------------------------------------------------------------------------

void NcclCommunicator::check_tensor(const Tensor& t, const char* op, const char* arg) const {
  TESSERA_CHECK(t.defined(), op, " on '", name_, "': ", arg, " is undefined");
  TESSERA_CHECK(
      (t.dtype() == DType::f32 || t.dtype() == DType::bf16) && t.device() == Device::cuda(device_),
      op, " on '", name_, "': ", arg, " must be f32 or bf16 on cuda:", device_,
      " (this communicator's device), got ", t.describe());
}

std::shared_ptr<NcclCommunicator::Op> NcclCommunicator::make_op(const char* op_name,
                                                                bool collective, int64_t elements,
                                                                DType dtype,
                                                                const std::string& detail) {
  // The Op's events belong to the current device: it must be this communicator's (the issuing
  // thread may not be the one that constructed it), or recording them on stream_ fails.
  cuda::check(cudaSetDevice(device_), "NcclCommunicator: cudaSetDevice");
  if (!flusher_) {
    flusher_ = std::make_shared<Flusher>();
    flusher_->flush = [this] { flush_p2p(); };
  }
  auto op = std::make_shared<Op>();
  std::string what;
  if (collective) {
    op->seq = ++seq_;
    what = absl::StrCat(op_name, " #", op->seq, " on group '", name_, "' (", elements, " ",
                        dtype_name(dtype), " elements", detail, ", NCCL)");
  } else {
    op->collective = false;
    op->seq = ++p2p_seq_;
    what = absl::StrCat(op_name, detail, " (p2p #", op->seq, " on group '", name_, "', ", elements,
                        " ", dtype_name(dtype), " elements, NCCL)");
  }
  op->issued_ns = now_ns();
  op->deadline_ns = op->issued_ns + int64_t(options_.timeout_s * 1e9);
  const bool blocking = std::string(op_name) == "barrier";
  op->work = std::make_shared<NcclWork>(std::move(what), device_, blocking, op->done, flusher_);
  op->work->set_backstop(op->deadline_ns + int64_t(std::max(30.0, options_.timeout_s) * 1e9));
  return op;
}

void NcclCommunicator::begin_on_stream() {
  cuda::check(cudaSetDevice(device_), "NcclCommunicator: cudaSetDevice");
  cuda::check(cudaEventRecord(ready_, cuda::compute_stream(device_)), "cudaEventRecord");
  cuda::check(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent");
}

WorkHandle NcclCommunicator::submit(std::shared_ptr<Op> op) {
  cuda::check(cudaEventRecord(op->done->e, stream_), "cudaEventRecord");
  WorkHandle work = op->work;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.push_back(std::move(op));
  }
  cv_.notify_one();
  return work;
}

// --- watcher thread ----------------------------------------------------------------------------

void NcclCommunicator::thread_main() {
  cudaSetDevice(device_);
  arrivals_->start();
  int64_t last_completion = now_ns();
  for (;;) {
    arrivals_->poll();  // peers' watchdogs may be asking, even while this rank is idle
    std::shared_ptr<Op> oldest;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (in_flight_.empty() && !stop_) cv_.wait_for(lock, std::chrono::milliseconds(20));
      if (in_flight_.empty()) {
        if (stop_) break;
        continue;
      }
      oldest = in_flight_.front();
    }
    const int64_t now = now_ns();
    if (!oldest->started && cudaEventQuery(oldest->start->e) == cudaSuccess) {
      oldest->started = true;
      oldest->work->mark_started(now);
    }
    cudaError_t e = cudaEventQuery(oldest->done->e);
    if (e == cudaSuccess) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        in_flight_.pop_front();
      }
      oldest->keep.clear();
      oldest->work->complete(now);
      last_completion = now;
      continue;
    }
    if (e != cudaErrorNotReady) watchdog_fire(*oldest, cudaGetErrorString(e));
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(nccl_, &async);
    if (async != ncclSuccess && async != ncclInProgress)
      watchdog_fire(*oldest, absl::StrCat("NCCL error: ", ncclGetErrorString(async)));
    if (now > oldest->deadline_ns)
      watchdog_fire(*oldest,
                    absl::StrFormat("not complete after %.1f s (deadline %.1f s)",
                                    double(now - oldest->issued_ns) * 1e-9, options_.timeout_s));
    const int64_t sleep_us =
        std::clamp<int64_t>((now - last_completion) / 16000, 0, options_.poll_max_sleep_us);
    if (sleep_us < 5)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
  }
  arrivals_->stop();
}

void NcclCommunicator::watchdog_fire(const Op& op, const std::string& why) {
  const std::string who = op.collective
                              ? arrivals_->describe_missing(op.seq, options_.query_timeout_s)
                              : absl::StrCat("its peer is rank ", world_ranks_[op.peer]);
  // ncclCommAbort stops this rank's NCCL kernels, so the process can end instead of hanging in
  // a kernel that waits for a peer forever.
  if (!aborted_.exchange(true)) ncclCommAbort(nccl_);
  abort_job(absl::StrCat("collective watchdog: ", op.work->what(), " ", why, "; ", who,
                         "; NCCL communicator aborted; aborting the job"));
}

}  // namespace tessera::distributed
