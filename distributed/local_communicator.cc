#include "distributed/local_communicator.h"

#include "absl/strings/str_cat.h"
#include "core/timer.h"

namespace tessera::distributed {

// check_f32, not check_cpu_f32: a group of one only copies, and copy() works across devices,
// so a 1-rank run on a GPU needs no NCCL. The data-movement operations take bf16 too.
WorkHandle LocalCommunicator::completed(const char* op, int64_t numel) {
  auto work =
      std::make_shared<Work>(absl::StrCat(op, " #", ++seq_, " on '", name_, "' (", numel, " f32)"));
  work->complete(now_ns());
  return work;
}

WorkHandle LocalCommunicator::all_reduce(const Tensor& t, ReduceOp op) {
  check_f32(t, "all_reduce", "t", name_);
  return completed("all_reduce", t.numel());
}

WorkHandle LocalCommunicator::reduce_scatter(const Tensor& input, const Tensor& output,
                                             ReduceOp op) {
  check_f32(input, "reduce_scatter", "input", name_);
  check_f32(output, "reduce_scatter", "output", name_);
  TESSERA_CHECK(input.numel() == output.numel(), "reduce_scatter on '", name_, "': input ",
                input.describe(), " must have size() = 1 times output's elements, output ",
                output.describe());
  if (input.raw_data() != output.raw_data()) copy(input, output);
  return completed("reduce_scatter", input.numel());
}

WorkHandle LocalCommunicator::all_gather(const Tensor& input, const Tensor& output) {
  check_movable(input, "all_gather", "input", name_);
  check_movable(output, "all_gather", "output", name_);
  check_same_dtype(input, output, "all_gather", name_);
  TESSERA_CHECK(input.numel() == output.numel(), "all_gather on '", name_, "': output ",
                output.describe(), " must have size() = 1 times input's elements, input ",
                input.describe());
  if (input.raw_data() != output.raw_data()) copy(input, output);
  return completed("all_gather", input.numel());
}

WorkHandle LocalCommunicator::broadcast(const Tensor& t, int root) {
  check_movable(t, "broadcast", "t", name_);
  TESSERA_CHECK(root == 0, "broadcast on '", name_, "': root ", root, " outside the group of 1");
  return completed("broadcast", t.numel());
}

WorkHandle LocalCommunicator::send(const Tensor& t, int peer) {
  check_movable(t, "send", "t", name_);
  TESSERA_CHECK(peer == 0, "send on '", name_, "': peer ", peer, " outside the group of 1");
  Tensor message = Tensor::empty(t.shape(), t.dtype(), t.device());
  copy(t, message);
  sent_to_self_.push_back(message);
  auto work = std::make_shared<Work>(absl::StrCat("send to 0 on '", name_, "'"));
  work->complete(now_ns());
  return work;
}

WorkHandle LocalCommunicator::recv(const Tensor& t, int peer) {
  check_movable(t, "recv", "t", name_);
  TESSERA_CHECK(peer == 0, "recv on '", name_, "': peer ", peer, " outside the group of 1");
  TESSERA_CHECK(!sent_to_self_.empty(), "recv on '", name_,
                "': nothing was sent to self (a group of one can only receive its own sends)");
  const Tensor& m = sent_to_self_.front();
  TESSERA_CHECK(m.numel() == t.numel() && m.dtype() == t.dtype(), "recv on '", name_,
                "': message of ", m.describe(), " into ", t.describe());
  copy(m, t);
  sent_to_self_.pop_front();
  auto work = std::make_shared<Work>(absl::StrCat("recv from 0 on '", name_, "'"));
  work->complete(now_ns());
  return work;
}

WorkHandle LocalCommunicator::barrier() {
  return completed("barrier", 0);
}

std::unique_ptr<Communicator> LocalCommunicator::split(int color, int key, std::string name) {
  return std::make_unique<LocalCommunicator>(std::move(name));
}

}  // namespace tessera::distributed
