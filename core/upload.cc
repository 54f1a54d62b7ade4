#include "core/upload.h"

#include "core/error.h"

namespace tessera {

Uploader::Uploader(Device device) : device_(device) {
  if (!device.is_cpu()) engine_ = detail::make_upload_engine(device);
}

Uploader::~Uploader() = default;

Tensor Uploader::upload(const Tensor& host) {
  TESSERA_CHECK(host.defined() && host.device().is_cpu(), "upload to ", device_.str(),
                ": the source must be a host tensor, got ",
                host.defined() ? host.describe() : std::string("an undefined tensor"));
  if (device_.is_cpu()) return host;
  Tensor dst = Tensor::empty(host.shape(), host.dtype(), device_);
  engine_->start(host, dst);
  bytes_uploaded_ += int64_t(host.nbytes());
  return dst;
}

std::map<std::string, Tensor> Uploader::upload(const std::map<std::string, Tensor>& batch) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : batch) {
    try {
      out.emplace(name, upload(t));
    } catch (const Error& e) {
      throw_error(absl::StrCat("batch tensor \"", name, "\": ", e.what()));
    }
  }
  return out;
}

}  // namespace tessera
