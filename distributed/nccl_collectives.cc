// NcclCommunicator's operations (nccl_communicator.h): checks, then the NCCL call on the
// communication stream after the compute stream's work, then the completion event.
#include "distributed/nccl_communicator.h"

#include "absl/strings/str_cat.h"
#include "core/timer.h"
#include "distributed/nccl_internal.h"

namespace tessera::distributed {

using nccl_detail::nccl_check;
using nccl_detail::nccl_op;
using nccl_detail::nccl_type;

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

}  // namespace tessera::distributed
