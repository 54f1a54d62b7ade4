#pragma once
// Tensor: a typed, shaped, contiguous view into a device buffer. Copies of a Tensor share the
// buffer (like a pointer); nothing here copies data unless a function says it does.

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "absl/container/inlined_vector.h"
#include "core/allocator.h"
#include "core/dtype.h"
#include "core/error.h"

namespace tessera {

using Shape = absl::InlinedVector<int64_t, 6>;
std::string shape_str(const Shape& shape);  // "(8, 256, 384)"
int64_t shape_numel(const Shape& shape);

// Owns one allocation on one device.
class Buffer {
 public:
  Buffer(size_t bytes, Device device);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false

  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  // A view of `shape` starting `offset_bytes` into `buffer`; checks that it fits.
  static Tensor view_of(std::shared_ptr<Buffer> buffer, size_t offset_bytes, const Shape& shape,
                        DType dtype);

  bool defined() const { return buffer_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const;
  const std::shared_ptr<Buffer>& buffer() const { return buffer_; }
  size_t offset_bytes() const { return offset_bytes_; }

  void* raw_data() const;
  // Typed pointer; throws when T does not match dtype().
  template <typename T>
  T* data() const {
    if (DTypeOf<T>::value != dtype_) wrong_dtype_access(dtype_name(DTypeOf<T>::value));
    return static_cast<T*>(raw_data());
  }

  // Same buffer, new shape with the same number of elements.
  Tensor view(const Shape& shape) const;
  // Rows [begin, end) along dimension 0, as a view.
  Tensor slice(int64_t begin, int64_t end) const;
  // `shape`-shaped view starting `element_offset` elements into this tensor (flat buffers).
  Tensor flat_view(int64_t element_offset, const Shape& shape) const;

  // "f32(8, 256) cpu"
  std::string describe() const;

 private:
  [[noreturn]] void wrong_dtype_access(const char* requested) const;

  std::shared_ptr<Buffer> buffer_;
  size_t offset_bytes_ = 0;
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::f32;
};

// Copies src into dst (same dtype and numel) across any pair of devices; synchronous.
void copy(const Tensor& src, const Tensor& dst);
// A new tensor on `device` holding src's values.
Tensor to_device(const Tensor& src, Device device);
// Fills with zeros (any device).
void zero_(const Tensor& t);

}  // namespace tessera
