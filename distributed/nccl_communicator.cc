#include "distributed/nccl_communicator.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/timer.h"

namespace tessera::distributed {

// Lets a Work handle launch its communicator's deferred point-to-point group before waiting;
// the communicator clears `flush` when it is destroyed.
struct NcclCommunicator::Flusher {
  std::mutex mu;
  std::function<void()> flush;
};

namespace {

using Flusher = NcclCommunicator::Flusher;

void nccl_check(ncclResult_t r, const std::string& what) {
  if (r != ncclSuccess)
    throw_error(
        absl::StrCat(what, ": ", ncclGetErrorString(r), " (", ncclGetLastError(nullptr), ")"));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kMax:
      return ncclMax;
  }
  return ncclSum;
}

ncclDataType_t nccl_type(DType d) {
  return d == DType::bf16 ? ncclBfloat16 : ncclFloat32;
}

// An event that outlives the communicator if a Work handle does.
struct Event {
  cudaEvent_t e = nullptr;
  Event() { cuda::check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate"); }
  ~Event() {
    if (e) cudaEventDestroy(e);
  }
};

class NcclWork final : public Work {
 public:
  NcclWork(std::string what, int device, bool blocking, std::shared_ptr<Event> done,
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
  std::shared_ptr<Event> done_event_;
  std::shared_ptr<Flusher> flusher_;
};

}  // namespace

struct NcclCommunicator::Op {
  std::shared_ptr<Work> work;
  std::shared_ptr<Event> start = std::make_shared<Event>(), done = std::make_shared<Event>();
  std::vector<Tensor> keep;  // buffers stay allocated until the operation completed
  bool started = false;
  int64_t seq = 0, issued_ns = 0, deadline_ns = 0;
  // Deferred point to point.
  bool sending = false;
  int peer = 0;
  Tensor tensor;
};

// --- construction ----------------------------------------------------------------------------

void NcclCommunicator::init_common(MPI_Comm comm) {
  TESSERA_CHECK(options_.timeout_s > 0, "NcclCommunicator '", name_, "': timeout_s must be > 0");
  MPI_Comm_dup(comm, &mpi_);
  MPI_Comm_rank(mpi_, &rank_);
  MPI_Comm_size(mpi_, &size_);
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  world_ranks_.resize(size_);
  MPI_Allgather(&world_rank, 1, MPI_INT, world_ranks_.data(), 1, MPI_INT, mpi_);
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
  thread_ = std::thread([this] { thread_main(); });
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
  thread_ = std::thread([this] { thread_main(); });
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

WorkHandle NcclCommunicator::all_reduce(const Tensor& t, ReduceOp rop) {
  check_tensor(t, "all_reduce", "t");
  flush_p2p();
  auto op =
      make_op("all_reduce", true, t.numel(), t.dtype(), absl::StrCat(", ", reduce_op_name(rop)));
  op->keep = {t};
  begin_on_stream();
  cuda::check(cudaEventRecord(op->start->e, stream_), "cudaEventRecord");
  nccl_check(ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()),
                           nccl_op(rop), nccl_, stream_),
             op->work->what());
  return submit(std::move(op));
}

WorkHandle NcclCommunicator::reduce_scatter(const Tensor& input, const Tensor& output,
                                            ReduceOp rop) {
  check_tensor(input, "reduce_scatter", "input");
  check_tensor(output, "reduce_scatter", "output");
  TESSERA_CHECK(input.dtype() == output.dtype() && input.numel() == int64_t(size_) * output.numel(),
                "reduce_scatter on '", name_, "': input ", input.describe(),
                " must have output's dtype and size() = ", size_, " times the elements of output ",
                output.describe());
  flush_p2p();
  auto op = make_op("reduce_scatter", true, input.numel(), input.dtype(),
                    absl::StrCat(", ", reduce_op_name(rop)));
  op->keep = {input, output};
  begin_on_stream();
  cuda::check(cudaEventRecord(op->start->e, stream_), "cudaEventRecord");
  nccl_check(ncclReduceScatter(input.raw_data(), output.raw_data(), size_t(output.numel()),
                               nccl_type(input.dtype()), nccl_op(rop), nccl_, stream_),
             op->work->what());
  return submit(std::move(op));
}

WorkHandle NcclCommunicator::all_gather(const Tensor& input, const Tensor& output) {
  check_tensor(input, "all_gather", "input");
  check_tensor(output, "all_gather", "output");
  TESSERA_CHECK(input.dtype() == output.dtype() && output.numel() == int64_t(size_) * input.numel(),
                "all_gather on '", name_, "': output ", output.describe(),
                " must have input's dtype and size() = ", size_, " times the elements of input ",
                input.describe());
  flush_p2p();
  auto op = make_op("all_gather", true, output.numel(), input.dtype(), "");
  op->keep = {input, output};
  begin_on_stream();
  cuda::check(cudaEventRecord(op->start->e, stream_), "cudaEventRecord");
  nccl_check(ncclAllGather(input.raw_data(), output.raw_data(), size_t(input.numel()),
                           nccl_type(input.dtype()), nccl_, stream_),
             op->work->what());
  return submit(std::move(op));
}

WorkHandle NcclCommunicator::broadcast(const Tensor& t, int root) {
  check_tensor(t, "broadcast", "t");
  TESSERA_CHECK(root >= 0 && root < size_, "broadcast on '", name_, "': root ", root,
                " outside the group of ", size_);
  flush_p2p();
  auto op = make_op("broadcast", true, t.numel(), t.dtype(), absl::StrCat(", root ", root));
  op->keep = {t};
  begin_on_stream();
  cuda::check(cudaEventRecord(op->start->e, stream_), "cudaEventRecord");
  nccl_check(ncclBroadcast(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()),
                           root, nccl_, stream_),
             op->work->what());
  return submit(std::move(op));
}

WorkHandle NcclCommunicator::barrier() {
  flush_p2p();
  auto op = make_op("barrier", true, 1, DType::f32, "");
  op->keep = {barrier_scratch_};
  begin_on_stream();
  cuda::check(cudaEventRecord(op->start->e, stream_), "cudaEventRecord");
  nccl_check(ncclAllReduce(barrier_scratch_.raw_data(), barrier_scratch_.raw_data(), 1, ncclFloat32,
                           ncclSum, nccl_, stream_),
             op->work->what());
  return submit(std::move(op));
}

WorkHandle NcclCommunicator::send(const Tensor& t, int peer) {
  check_tensor(t, "send", "t");
  TESSERA_CHECK(peer >= 0 && peer < size_, "send on '", name_, "': peer ", peer,
                " outside the group of ", size_);
  auto op =
      make_op("send", false, t.numel(), t.dtype(), absl::StrCat(" to rank ", world_ranks_[peer]));
  op->sending = true;
  op->peer = peer;
  op->tensor = t;
  pending_p2p_.push_back(op);
  return op->work;
}

WorkHandle NcclCommunicator::recv(const Tensor& t, int peer) {
  check_tensor(t, "recv", "t");
  TESSERA_CHECK(peer >= 0 && peer < size_, "recv on '", name_, "': peer ", peer,
                " outside the group of ", size_);
  auto op =
      make_op("recv", false, t.numel(), t.dtype(), absl::StrCat(" from rank ", world_ranks_[peer]));
  op->peer = peer;
  op->tensor = t;
  pending_p2p_.push_back(op);
  return op->work;
}

void NcclCommunicator::flush_p2p() {
  if (pending_p2p_.empty()) return;
  std::vector<std::shared_ptr<Op>> ops;
  ops.swap(pending_p2p_);
  begin_on_stream();
  cuda::check(cudaEventRecord(ops.front()->start->e, stream_), "cudaEventRecord");
  nccl_check(ncclGroupStart(), "ncclGroupStart");
  for (auto& op : ops) {
    const Tensor& t = op->tensor;
    ncclResult_t r = op->sending ? ncclSend(t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()),
                                            op->peer, nccl_, stream_)
                                 : ncclRecv(t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()),
                                            op->peer, nccl_, stream_);
    if (r != ncclSuccess) {
      ncclGroupEnd();
      nccl_check(r, op->work->what());
    }
  }
  nccl_check(ncclGroupEnd(), "ncclGroupEnd of the deferred sends and receives");
  // One group: every operation of it completes together.
  for (size_t i = 0; i < ops.size(); ++i) {
    if (i > 0) ops[i]->start = ops.front()->start;
    ops[i]->keep = {ops[i]->tensor};
    ops[i]->tensor = Tensor();
    submit(ops[i]);
  }
}

// --- watcher thread ----------------------------------------------------------------------------

void NcclCommunicator::thread_main() {
  cudaSetDevice(device_);
  int64_t last_completion = now_ns();
  for (;;) {
    std::shared_ptr<Op> oldest;
    {
      std::unique_lock<std::mutex> lock(mu_);
      while (in_flight_.empty() && !stop_) cv_.wait_for(lock, std::chrono::milliseconds(20));
      if (in_flight_.empty() && stop_) return;
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
}

void NcclCommunicator::watchdog_fire(const Op& op, const std::string& why) {
  // ncclCommAbort stops this rank's NCCL kernels, so the process can end instead of hanging in
  // a kernel that waits for a peer forever.
  if (!aborted_.exchange(true)) ncclCommAbort(nccl_);
  abort_job(absl::StrCat("collective watchdog: ", op.work->what(), " ", why,
                         "; NCCL communicator aborted; aborting the job"));
}

}  // namespace tessera::distributed
