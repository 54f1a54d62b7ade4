#include "core/upload.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/error.h"

namespace tessera {

Uploader::Uploader(Device device, std::vector<std::string> keep_on_host)
    : device_(device), keep_(std::move(keep_on_host)) {
  if (!device.is_cpu()) engine_ = detail::make_upload_engine(device);
}

Uploader::~Uploader() = default;

Uploader::Pending Uploader::upload(const TensorMap& host) {
  for (const auto& [name, t] : host) {
    TESSERA_CHECK(t.defined() && t.device().is_cpu(), "upload to ", device_.str(),
                  ": batch tensor \"", name, "\" must be a host tensor, got ",
                  t.defined() ? t.describe() : std::string("an undefined tensor"));
  }
  Pending pending;
  if (!engine_) {
    pending.tensors = host;
    return pending;
  }
  pending.slot = engine_->start(host, keep_, pending.tensors);
  for (const auto& [name, t] : host)
    if (std::find(keep_.begin(), keep_.end(), name) == keep_.end())
      bytes_uploaded_ += int64_t(t.nbytes());
  return pending;
}

TensorMap Uploader::ready(Pending pending) {
  if (engine_ && pending.slot >= 0) engine_->ready(pending.slot);
  return std::move(pending.tensors);
}

}  // namespace tessera
