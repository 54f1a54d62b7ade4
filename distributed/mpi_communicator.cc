#include "distributed/mpi_communicator.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/timer.h"

// The contract is in the header. Why it is built this way (a communication thread that polls
// non-blocking operations with back-off instead of spinning in blocking MPI calls, four duplicated
// communicators, the watchdog, the bulk path, signals) and the measurements behind it:
// docs/DISTRIBUTED.md.

namespace tessera::distributed {

namespace {

constexpr int kTagData = 0;  // point-to-point payloads on data_ (ctrl_: arrival_query.h)

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, len);
}

void mpi_check(int rc, const char* call, const std::string& group) {
  TESSERA_CHECK(rc == MPI_SUCCESS, call, " on '", group, "' failed: ", mpi_error_string(rc));
}

const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED:
      return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED:
      return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE:
      return "MPI_THREAD_MULTIPLE";
  }
  return "unknown";
}

void require_thread_multiple() {
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  TESSERA_CHECK(provided >= MPI_THREAD_MULTIPLE, "MPI provides thread level ",
                thread_level_name(provided),
                "; tessera's communication threads need MPI_THREAD_MULTIPLE (initialise MPI "
                "through distributed::MpiEnvironment, and use an MPI built with thread support)");
}

MPI_Op mpi_op(ReduceOp op) {
  return op == ReduceOp::kMax ? MPI_MAX : MPI_SUM;
}

// bf16 travels as its 16-bit pattern: the operations that take it only move data, so no MPI
// type with arithmetic is needed (the reductions refuse it before this is reached).
MPI_Datatype mpi_type(DType dtype) {
  return dtype == DType::bf16 ? MPI_UINT16_T : MPI_FLOAT;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

MpiEnvironment::MpiEnvironment(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = MPI_THREAD_SINGLE;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    TESSERA_CHECK(rc == MPI_SUCCESS, "MPI_Init_thread failed: ", mpi_error_string(rc));
    owns_ = true;
  }
  require_thread_multiple();
}

MpiEnvironment::~MpiEnvironment() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_ && !finalized) MPI_Finalize();
}

// ---------------------------------------------------------------------------------------------

struct MpiCommunicator::Op {
  enum Kind { kAllReduce, kReduceScatter, kAllGather, kBroadcast, kSend, kRecv, kBarrier };
  Op(Kind k, const char* name) : kind(k), op_name(name) {}
  Kind kind;
  const char* op_name;
  bool collective = true;
  ReduceOp rop = ReduceOp::kSum;
  Tensor a, b;               // a: the in-place tensor or the input; b: the output
  DType dtype = DType::f32;  // a's (and b's): f32, or bf16 for the data-movement operations
  bool in_place = false;     // all_gather: a is this rank's range of b (MPI_IN_PLACE)
  int peer = 0;              // root for broadcast, peer for send/recv
  int64_t seq = 0;
  int64_t elements = 0;
  int64_t issued_ns = 0, deadline_ns = 0;
  WorkHandle work;
  MPI_Request req = MPI_REQUEST_NULL;
  bool complete = false;
  bool bulk = false;     // arrival barrier, then the blocking collective on bulk_
  bool arrived = false;  // bulk: the arrival barrier completed
  std::string error;
};

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::string name, MpiOptions options)
    : name_(std::move(name)), options_(options) {
  require_thread_multiple();
  TESSERA_CHECK(options_.timeout_s > 0, "MpiCommunicator '", name_, "': timeout_s must be > 0");
  mpi_check(MPI_Comm_dup(comm, &base_), "MPI_Comm_dup", name_);
  mpi_check(MPI_Comm_dup(comm, &data_), "MPI_Comm_dup", name_);
  mpi_check(MPI_Comm_dup(comm, &ctrl_), "MPI_Comm_dup", name_);
  mpi_check(MPI_Comm_dup(comm, &bulk_), "MPI_Comm_dup", name_);
  // Errors come back as codes (turned into failed Work) instead of MPI's default abort without
  // context.
  for (MPI_Comm c : {base_, data_, ctrl_, bulk_}) MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
  MPI_Comm_rank(base_, &rank_);
  MPI_Comm_size(base_, &size_);

  MPI_Group group, world_group;
  MPI_Comm_group(base_, &group);
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  std::vector<int> ranks(size_);
  for (int r = 0; r < size_; ++r) ranks[r] = r;
  world_ranks_.resize(size_);
  MPI_Group_translate_ranks(group, size_, ranks.data(), world_group, world_ranks_.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  arrivals_ = std::make_unique<ArrivalQuery>(ctrl_, &seq_, world_ranks_, name_);

  // The thread inherits a mask blocking the termination signals (design notes above).
  thread_ = start_thread_blocking_signals([this] { thread_main(); });
}

MpiCommunicator::~MpiCommunicator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (MPI_Comm* c : {&base_, &data_, &ctrl_, &bulk_}) {
    if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
  }
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::world(MpiOptions options) {
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, "world", options);
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key, std::string name) {
  TESSERA_CHECK(color >= 0, "split of '", name_, "' into '", name, "': color ", color,
                " must be >= 0");
  MPI_Comm sub = MPI_COMM_NULL;
  mpi_check(MPI_Comm_split(base_, color, key, &sub), "MPI_Comm_split", name_);
  auto child = std::make_unique<MpiCommunicator>(sub, std::move(name), options_);
  MPI_Comm_free(&sub);
  return child;
}

// --- issuing side ----------------------------------------------------------------------------

WorkHandle MpiCommunicator::enqueue(std::unique_ptr<Op> op) {
  std::unique_lock<std::mutex> lock(mu_);
  std::string what;
  if (op->collective) {
    op->seq = seq_.load() + 1;
    seq_.store(op->seq);
    what = absl::StrCat(op->op_name, " #", op->seq, " on group '", name_, "' (", op->elements,
                        " f32 elements");
    if (op->kind == Op::kAllReduce || op->kind == Op::kReduceScatter)
      absl::StrAppend(&what, ", ", reduce_op_name(op->rop));
    if (op->kind == Op::kBroadcast) absl::StrAppend(&what, ", root ", op->peer);
    absl::StrAppend(&what, ")");
  } else {
    op->seq = ++p2p_seq_;
    what = absl::StrCat(op->op_name, op->kind == Op::kSend ? " to" : " from", " rank ",
                        world_ranks_[op->peer], " (p2p #", op->seq, " on group '", name_, "', ",
                        op->elements, " ", dtype_name(op->dtype), " elements)");
  }
  op->issued_ns = now_ns();
  op->deadline_ns = op->issued_ns + int64_t(options_.timeout_s * 1e9);
  op->work = std::make_shared<Work>(std::move(what));
  // Backstop well behind the watchdog (which needs the deadline plus the query time).
  op->work->set_backstop(
      op->deadline_ns +
      int64_t((std::max(30.0, options_.timeout_s) + options_.query_timeout_s) * 1e9));
  WorkHandle work = op->work;
  queue_.push_back(std::move(op));
  lock.unlock();
  cv_.notify_one();
  return work;
}

WorkHandle MpiCommunicator::all_reduce(const Tensor& t, ReduceOp rop) {
  check_cpu_f32(t, "all_reduce", "t", name_);
  auto op = std::make_unique<Op>(Op::kAllReduce, "all_reduce");
  op->rop = rop;
  op->a = t;
  op->elements = t.numel();
  return enqueue(std::move(op));
}

WorkHandle MpiCommunicator::reduce_scatter(const Tensor& input, const Tensor& output,
                                           ReduceOp rop) {
  check_cpu_f32(input, "reduce_scatter", "input", name_);
  check_cpu_f32(output, "reduce_scatter", "output", name_);
  TESSERA_CHECK(input.numel() == int64_t(size_) * output.numel(), "reduce_scatter on '", name_,
                "': input ", input.describe(), " must have size() = ", size_,
                " times the elements of output ", output.describe());
  auto op = std::make_unique<Op>(Op::kReduceScatter, "reduce_scatter");
  op->rop = rop;
  op->a = input;
  op->b = output;
  op->elements = input.numel();
  return enqueue(std::move(op));
}

WorkHandle MpiCommunicator::all_gather(const Tensor& input, const Tensor& output) {
  check_cpu_movable(input, "all_gather", "input", name_);
  check_cpu_movable(output, "all_gather", "output", name_);
  check_same_dtype(input, output, "all_gather", name_);
  TESSERA_CHECK(output.numel() == int64_t(size_) * input.numel(), "all_gather on '", name_,
                "': output ", output.describe(), " must have size() = ", size_,
                " times the elements of input ", input.describe());
  auto op = std::make_unique<Op>(Op::kAllGather, "all_gather");
  op->dtype = input.dtype();
  op->in_place = input.raw_data() == static_cast<const char*>(output.raw_data()) +
                                         int64_t(rank_) * int64_t(input.nbytes());
  op->a = input;
  op->b = output;
  op->elements = output.numel();
  return enqueue(std::move(op));
}

WorkHandle MpiCommunicator::broadcast(const Tensor& t, int root) {
  check_cpu_movable(t, "broadcast", "t", name_);
  TESSERA_CHECK(root >= 0 && root < size_, "broadcast on '", name_, "': root ", root,
                " outside the group of ", size_);
  auto op = std::make_unique<Op>(Op::kBroadcast, "broadcast");
  op->dtype = t.dtype();
  op->a = t;
  op->peer = root;
  op->elements = t.numel();
  return enqueue(std::move(op));
}

WorkHandle MpiCommunicator::point_to_point(bool sending, const Tensor& t, int peer) {
  const char* what = sending ? "send" : "recv";
  check_cpu_movable(t, what, "t", name_);
  TESSERA_CHECK(peer >= 0 && peer < size_, what, " on '", name_, "': peer ", peer,
                " outside the group of ", size_);
  auto op = std::make_unique<Op>(sending ? Op::kSend : Op::kRecv, what);
  op->collective = false;
  op->dtype = t.dtype();
  op->a = t;
  op->peer = peer;
  op->elements = t.numel();
  return enqueue(std::move(op));
}

WorkHandle MpiCommunicator::send(const Tensor& t, int peer) {
  return point_to_point(/*sending=*/true, t, peer);
}

WorkHandle MpiCommunicator::recv(const Tensor& t, int peer) {
  return point_to_point(/*sending=*/false, t, peer);
}

WorkHandle MpiCommunicator::barrier() {
  return enqueue(std::make_unique<Op>(Op::kBarrier, "barrier"));
}

// --- communication thread --------------------------------------------------------------------

void MpiCommunicator::start(Op& op) {
  op.work->mark_started(now_ns());
  const int n = int(op.elements);
  int rc = MPI_SUCCESS;
  if (op.collective && op.kind != Op::kBarrier && size_ > 1 &&
      size_t(op.elements) * dtype_size(op.dtype) >= options_.bulk_min_bytes) {
    op.bulk = true;
    rc = MPI_Ibarrier(data_, &op.req);
    if (rc != MPI_SUCCESS) {
      op.complete = true;
      op.error = mpi_error_string(rc);
    }
    return;
  }
  const MPI_Datatype type = mpi_type(op.dtype);
  switch (op.kind) {
    case Op::kAllReduce:
      rc = MPI_Iallreduce(MPI_IN_PLACE, op.a.data<float>(), n, MPI_FLOAT, mpi_op(op.rop), data_,
                          &op.req);
      break;
    case Op::kReduceScatter:
      rc = MPI_Ireduce_scatter_block(op.a.data<float>(), op.b.data<float>(), int(op.b.numel()),
                                     MPI_FLOAT, mpi_op(op.rop), data_, &op.req);
      break;
    case Op::kAllGather:
      rc = MPI_Iallgather(op.in_place ? MPI_IN_PLACE : op.a.raw_data(), int(op.a.numel()), type,
                          op.b.raw_data(), int(op.a.numel()), type, data_, &op.req);
      break;
    case Op::kBroadcast:
      rc = MPI_Ibcast(op.a.raw_data(), n, type, op.peer, data_, &op.req);
      break;
    case Op::kSend:
      rc = MPI_Isend(op.a.raw_data(), n, type, op.peer, kTagData, data_, &op.req);
      break;
    case Op::kRecv:
      rc = MPI_Irecv(op.a.raw_data(), n, type, op.peer, kTagData, data_, &op.req);
      break;
    case Op::kBarrier:
      rc = MPI_Ibarrier(data_, &op.req);
      break;
  }
  if (rc != MPI_SUCCESS) {
    op.complete = true;
    op.error = mpi_error_string(rc);
    op.req = MPI_REQUEST_NULL;
  }
}

// The blocking collective of a bulk operation; every peer has arrived (design notes above).
void MpiCommunicator::run_bulk(Op& op) {
  const int n = int(op.elements);
  int rc = MPI_SUCCESS;
  const MPI_Datatype type = mpi_type(op.dtype);
  switch (op.kind) {
    case Op::kAllReduce:
      rc = MPI_Allreduce(MPI_IN_PLACE, op.a.data<float>(), n, MPI_FLOAT, mpi_op(op.rop), bulk_);
      break;
    case Op::kReduceScatter:
      rc = MPI_Reduce_scatter_block(op.a.data<float>(), op.b.data<float>(), int(op.b.numel()),
                                    MPI_FLOAT, mpi_op(op.rop), bulk_);
      break;
    case Op::kAllGather:
      rc = MPI_Allgather(op.in_place ? MPI_IN_PLACE : op.a.raw_data(), int(op.a.numel()), type,
                         op.b.raw_data(), int(op.a.numel()), type, bulk_);
      break;
    case Op::kBroadcast:
      rc = MPI_Bcast(op.a.raw_data(), n, type, op.peer, bulk_);
      break;
    default:
      rc = MPI_ERR_OTHER;
  }
  op.complete = true;
  if (rc != MPI_SUCCESS) op.error = mpi_error_string(rc);
}

void MpiCommunicator::finish(Op& op, int64_t now) {
  if (!op.error.empty()) {
    op.work->fail(op.error, now);
    return;
  }
  if (op.rop == ReduceOp::kAvg && size_ > 1) {
    const Tensor& t = op.kind == Op::kAllReduce ? op.a : op.b;
    float* p = t.data<float>();
    const float d = float(size_);
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] /= d;
  }
  // Drop this thread's references before the issuer learns of completion: a caller that frees
  // its buffer right after wait() (ZeRO-3's ParamStore::release) must really free it, not leave
  // it alive until this op is popped below.
  op.a = Tensor();
  op.b = Tensor();
  op.work->complete(now);
}

void MpiCommunicator::thread_main() {
  arrivals_->start();
  std::vector<MPI_Request> reqs;
  std::vector<Op*> req_ops;
  std::vector<int> indices;
  std::vector<MPI_Status> statuses;
  int idle_polls = 0;
  int64_t last_progress_ns = now_ns();
  for (;;) {
    std::deque<std::unique_ptr<Op>> fresh;
    bool stopping;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (queue_.empty() && in_flight_.empty() && !stop_) {
        // Nothing to drive: sleep, but wake to answer watchdog queries of other ranks.
        cv_.wait_for(lock, std::chrono::milliseconds(20));
      }
      fresh.swap(queue_);
      stopping = stop_;
    }
    bool progress = !fresh.empty();
    for (auto& op : fresh) {
      start(*op);
      in_flight_.push_back(std::move(op));
    }
    arrivals_->poll();

    if (!in_flight_.empty()) {
      reqs.clear();
      req_ops.clear();
      for (auto& op : in_flight_) {
        if (op->complete || op->req == MPI_REQUEST_NULL) continue;
        reqs.push_back(op->req);
        req_ops.push_back(op.get());
      }
      if (!reqs.empty()) {
        int count = 0;
        indices.resize(reqs.size());
        statuses.resize(reqs.size());
        int rc =
            MPI_Testsome(int(reqs.size()), reqs.data(), &count, indices.data(), statuses.data());
        if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) {
          for (Op* op : req_ops) {
            op->complete = true;
            op->error = mpi_error_string(rc);
          }
        } else if (count != MPI_UNDEFINED) {
          for (int k = 0; k < count; ++k) {
            Op* op = req_ops[indices[k]];
            op->req = MPI_REQUEST_NULL;
            if (rc == MPI_ERR_IN_STATUS && statuses[k].MPI_ERROR != MPI_SUCCESS) {
              op->complete = true;
              op->error = mpi_error_string(statuses[k].MPI_ERROR);
            } else if (op->bulk) {
              op->arrived = true;  // the transfer runs when it is the oldest (below)
            } else {
              op->complete = true;
            }
          }
        }
      }
      // Report completions in issue order.
      int64_t now = now_ns();
      while (!in_flight_.empty()) {
        Op& front = *in_flight_.front();
        if (!front.complete && front.bulk && front.arrived) {
          run_bulk(front);
          now = now_ns();
        }
        if (!front.complete) break;
        finish(front, now);
        in_flight_.pop_front();
        progress = true;
      }
      if (!in_flight_.empty() && now > in_flight_.front()->deadline_ns)
        watchdog_fire(*in_flight_.front(), now);
    }

    if (in_flight_.empty()) {
      if (stopping) break;
      idle_polls = 0;
      continue;
    }
    // Back off: a few yields (cheap, keep latency low), then sleeps of 1/16 of the time waited
    // since the last progress, capped: a completion is noticed at most ~6 % late, and a long wait
    // (a late peer) costs a few wake-ups per millisecond instead of a spinning core.
    if (progress) {
      idle_polls = 0;
      last_progress_ns = now_ns();
    } else if (++idle_polls <= 8) {
      sched_yield();
    } else {
      int64_t us = (now_ns() - last_progress_ns) / 16000;
      us = std::clamp<int64_t>(us, 1, std::max(1, options_.poll_max_sleep_us));
      std::this_thread::sleep_for(std::chrono::microseconds(us));
    }
  }
  arrivals_->stop();
}

void MpiCommunicator::watchdog_fire(const Op& op, int64_t now) {
  const double waited = double(now - op.issued_ns) * 1e-9;
  std::string who;
  if (!op.collective) {
    who = absl::StrCat("its peer is rank ", world_ranks_[op.peer]);
  } else {
    // Ask every other rank which sequence number it has issued last on this group.
    who = arrivals_->describe_missing(op.seq, options_.query_timeout_s);
  }
  abort_job(absl::StrFormat(
      "collective watchdog: %s not complete after %.1f s (deadline %.1f s); %s; aborting the job",
      op.work->what(), waited, options_.timeout_s, who));
}

}  // namespace tessera::distributed
