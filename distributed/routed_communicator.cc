#include "distributed/routed_communicator.h"

#include "absl/strings/str_cat.h"
#include "core/error.h"

namespace tessera::distributed {

RoutedCommunicator::RoutedCommunicator(std::unique_ptr<Communicator> host,
                                       std::unique_ptr<Communicator> device)
    : host_(std::move(host)), device_(std::move(device)) {
  TESSERA_CHECK(host_ && device_, "RoutedCommunicator: both transports are needed");
  TESSERA_CHECK(host_->size() == device_->size() && host_->rank() == device_->rank(),
                "RoutedCommunicator '", host_->name(), "': the host transport has rank ",
                host_->rank(), " of ", host_->size(), ", the device transport '", device_->name(),
                "' rank ", device_->rank(), " of ", device_->size());
}

int64_t RoutedCommunicator::last_sequence() const {
  return host_->last_sequence() + device_->last_sequence();
}

Communicator& RoutedCommunicator::route(const Tensor& t, const Tensor* other, const char* op) {
  TESSERA_CHECK(t.defined(), op, " on '", name(), "': the tensor is undefined");
  if (other) {
    TESSERA_CHECK(other->defined() && other->device() == t.device(), op, " on '", name(),
                  "': input on ", t.device().str(), " but output ",
                  other->defined() ? other->describe() : std::string("undefined"));
  }
  return t.device().is_cpu() ? *host_ : *device_;
}

WorkHandle RoutedCommunicator::all_reduce(const Tensor& t, ReduceOp op) {
  return route(t, nullptr, "all_reduce").all_reduce(t, op);
}

WorkHandle RoutedCommunicator::reduce_scatter(const Tensor& input, const Tensor& output,
                                              ReduceOp op) {
  return route(input, &output, "reduce_scatter").reduce_scatter(input, output, op);
}

WorkHandle RoutedCommunicator::all_gather(const Tensor& input, const Tensor& output) {
  return route(input, &output, "all_gather").all_gather(input, output);
}

WorkHandle RoutedCommunicator::broadcast(const Tensor& t, int root) {
  return route(t, nullptr, "broadcast").broadcast(t, root);
}

WorkHandle RoutedCommunicator::send(const Tensor& t, int peer) {
  return route(t, nullptr, "send").send(t, peer);
}

WorkHandle RoutedCommunicator::recv(const Tensor& t, int peer) {
  return route(t, nullptr, "recv").recv(t, peer);
}

WorkHandle RoutedCommunicator::barrier() {
  return host_->barrier();
}

std::unique_ptr<Communicator> RoutedCommunicator::split(int color, int key, std::string name) {
  std::unique_ptr<Communicator> host = host_->split(color, key, name);
  std::unique_ptr<Communicator> device = device_->split(color, key, name);
  return std::make_unique<RoutedCommunicator>(std::move(host), std::move(device));
}

}  // namespace tessera::distributed
