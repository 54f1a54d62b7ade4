#pragma once
// Argument checks shared by every op adapter. A failed check throws tessera::Error with a
// message naming the op, the argument and the shapes involved, e.g.
//   "layernorm_forward: weight must be f32(64), got f32(63) cpu"

#include <string>

#include "core/tensor.h"

namespace tessera::ops {

class OpCheck {
 public:
  explicit OpCheck(const char* op) : op_(op) {}

  // `t` is defined, has `dtype`, and lives on the same device as every tensor checked before.
  const OpCheck& tensor(const char* name, const Tensor& t, DType dtype) const;
  // As tensor(), and its shape equals `shape`.
  const OpCheck& tensor(const char* name, const Tensor& t, DType dtype, const Shape& shape) const;
  // As tensor(), and it has `ndim` dimensions.
  const OpCheck& tensor_ndim(const char* name, const Tensor& t, DType dtype, int ndim) const;
  // A condition on values or sizes; `what` explains it.
  const OpCheck& expect(bool ok, const std::string& what) const;

  [[noreturn]] void fail(const std::string& what) const;
  // Called by adapters for a device without a kernel in this build.
  [[noreturn]] void no_kernel(Device device) const;
  Device device() const { return device_; }

 private:
  void same_device(const char* name, const Tensor& t) const;

  const char* op_;
  mutable bool have_device_ = false;
  mutable Device device_;
};

}  // namespace tessera::ops
