#include "ops/check.h"

#include "absl/strings/str_cat.h"

namespace tessera::ops {

void OpCheck::fail(const std::string& what) const {
  throw_error(absl::StrCat(op_, ": ", what));
}

void OpCheck::no_kernel(Device device) const {
  fail(absl::StrCat("no kernel for ", device.str(),
                    cuda_compiled() ? " yet" : " (this build has no CUDA support)"));
}

void OpCheck::same_device(const char* name, const Tensor& t) const {
  if (!have_device_) {
    device_ = t.device();
    have_device_ = true;
  } else if (!(t.device() == device_)) {
    fail(absl::StrCat(name, " is on ", t.device().str(), " but the other arguments are on ",
                      device_.str()));
  }
}

const OpCheck& OpCheck::tensor(const char* name, const Tensor& t, DType dtype) const {
  if (!t.defined()) fail(absl::StrCat(name, " is undefined"));
  if (t.dtype() != dtype) {
    fail(absl::StrCat(name, " must be ", dtype_name(dtype), ", got ", t.describe()));
  }
  same_device(name, t);
  return *this;
}

const OpCheck& OpCheck::tensor(const char* name, const Tensor& t, DType dtype,
                               const Shape& shape) const {
  tensor(name, t, dtype);
  if (t.shape() != shape) {
    fail(absl::StrCat(name, " must be ", dtype_name(dtype), shape_str(shape), ", got ",
                      t.describe()));
  }
  return *this;
}

const OpCheck& OpCheck::tensor_ndim(const char* name, const Tensor& t, DType dtype,
                                    int ndim) const {
  tensor(name, t, dtype);
  if (t.ndim() != ndim) {
    fail(absl::StrCat(name, " must have ", ndim, " dimensions, got ", t.describe()));
  }
  return *this;
}

const OpCheck& OpCheck::expect(bool ok, const std::string& what) const {
  if (!ok) fail(what);
  return *this;
}

}  // namespace tessera::ops
