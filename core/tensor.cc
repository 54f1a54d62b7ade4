#include "core/tensor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/device_memory.h"

namespace tessera {

std::string shape_str(const Shape& shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    TESSERA_CHECK(d >= 0, "shape ", shape_str(shape), " has a negative dimension");
    n *= d;
  }
  return n;
}

Buffer::Buffer(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = allocator_for(device).allocate(bytes);
}

Buffer::~Buffer() {
  allocator_for(device_).deallocate(data_, bytes_);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  return view_of(std::make_shared<Buffer>(bytes, device), 0, shape, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  zero_(t);
  return t;
}

Tensor Tensor::view_of(std::shared_ptr<Buffer> buffer, size_t offset_bytes, const Shape& shape,
                       DType dtype) {
  TESSERA_CHECK(buffer != nullptr, "Tensor::view_of: null buffer");
  Tensor t;
  t.numel_ = shape_numel(shape);
  size_t end = offset_bytes + static_cast<size_t>(t.numel_) * dtype_size(dtype);
  TESSERA_CHECK(end <= buffer->bytes(), "Tensor::view_of: ", dtype_name(dtype), shape_str(shape),
                " at byte offset ", offset_bytes, " exceeds the buffer of ", buffer->bytes(),
                " bytes");
  t.buffer_ = std::move(buffer);
  t.offset_bytes_ = offset_bytes;
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  int j = i < 0 ? i + n : i;
  TESSERA_CHECK(j >= 0 && j < n, "Tensor::dim(", i, ") on a tensor of shape ", shape_str(shape_));
  return shape_[j];
}

Device Tensor::device() const {
  return buffer_ ? buffer_->device() : Device::cpu();
}

void* Tensor::raw_data() const {
  TESSERA_CHECK(defined(), "access to the data of an undefined tensor");
  return static_cast<char*>(buffer_->data()) + offset_bytes_;
}

Tensor Tensor::view(const Shape& shape) const {
  TESSERA_CHECK(shape_numel(shape) == numel_, "Tensor::view: cannot view ", describe(), " as ",
                shape_str(shape));
  return view_of(buffer_, offset_bytes_, shape, dtype_);
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  TESSERA_CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0],
                "Tensor::slice: rows [", begin, ", ", end, ") of ", describe());
  Shape s = shape_;
  int64_t row = s[0] ? numel_ / s[0] : 0;
  s[0] = end - begin;
  return view_of(buffer_, offset_bytes_ + static_cast<size_t>(begin * row) * dtype_size(dtype_), s,
                 dtype_);
}

Tensor Tensor::flat_view(int64_t element_offset, const Shape& shape) const {
  int64_t n = shape_numel(shape);
  TESSERA_CHECK(element_offset >= 0 && element_offset + n <= numel_,
                "Tensor::flat_view: ", shape_str(shape), " at element ", element_offset,
                " exceeds ", describe());
  return view_of(buffer_, offset_bytes_ + static_cast<size_t>(element_offset) * dtype_size(dtype_),
                 shape, dtype_);
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined";
  return absl::StrCat(dtype_name(dtype_), shape_str(shape_), " ", device().str());
}

void Tensor::wrong_dtype_access(const char* requested) const {
  throw_error(absl::StrCat("Tensor::data<", requested, ">() on ", describe()));
}

void copy(const Tensor& src, const Tensor& dst) {
  TESSERA_CHECK(src.dtype() == dst.dtype() && src.numel() == dst.numel(), "copy: ", src.describe(),
                " into ", dst.describe());
  detail::device_memcpy(dst.raw_data(), dst.device(), src.raw_data(), src.device(), src.nbytes());
}

Tensor to_device(const Tensor& src, Device device) {
  Tensor dst = Tensor::empty(src.shape(), src.dtype(), device);
  copy(src, dst);
  return dst;
}

void zero_(const Tensor& t) {
  if (t.numel()) detail::device_memset_zero(t.raw_data(), t.device(), t.nbytes());
}

}  // namespace tessera
