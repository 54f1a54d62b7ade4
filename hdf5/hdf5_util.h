#pragma once
// Small helpers over the HDF5 C API shared by the data pipeline's shards and the checkpoints:
// an owning handle, a scope that silences HDF5's own stderr error printing and turns its error
// stack into text, the Fletcher32 checksum for reading raw chunks, and dtype descriptions for
// schema errors.

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace tessera::hdf5 {

// Owns one HDF5 identifier (file, dataset, dataspace, property list, attribute, type) and
// releases it with H5Idec_ref, which closes any kind of identifier when its count drops to 0.
class H5Handle {
 public:
  H5Handle() = default;
  explicit H5Handle(hid_t id) : id_(id) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  H5Handle& operator=(H5Handle&& o) noexcept;
  ~H5Handle() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Gives up ownership (for H5Fclose, whose return value reports a failed final flush).
  hid_t release() {
    hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// While alive, HDF5 does not print its error stack to stderr (errors become absl::Status with
// the text from error_text()). HDF5 keeps the error-printing setting per thread in thread-safe
// builds, so this is safe with several reader threads.
class H5Quiet {
 public:
  H5Quiet();
  ~H5Quiet();
  H5Quiet(const H5Quiet&) = delete;
  H5Quiet& operator=(const H5Quiet&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The current thread's HDF5 error stack, innermost first, as "; "-joined descriptions, then
// clears it. Empty when the stack is empty.
std::string h5_error_text();

// True when the current error stack holds a Fletcher32 (or other filter) checksum failure.
// Call before h5_error_text(), which clears the stack.
bool h5_error_is_checksum();

// HDF5's Fletcher32 checksum (H5Z_FILTER_FLETCHER32) of `bytes` bytes: 16-bit big-endian words
// summed modulo 65535 (as HDF5 folds them, so equal to what the filter stores after a chunk, as
// a little-endian uint32). For readers that check raw chunks outside libhdf5's global lock.
uint32_t fletcher32(const uint8_t* data, size_t bytes);
// The same over bytes fed in pieces (a chunk checked block by block as it is read, while the
// block is in cache). Every piece but the last must have an even length (whole words).
class Fletcher32 {
 public:
  void update(const uint8_t* data, size_t bytes);
  uint32_t value() const;

 private:
  uint64_t s1_ = 0, s2_ = 0;  // the exact sums mod 65535, and whether they are nonzero
  bool s1_nonzero_ = false, s2_nonzero_ = false;
};
// The checksum the filter stored after a chunk's bytes (little-endian).
inline uint32_t stored_checksum(const uint8_t* at) {
  return uint32_t(at[0]) | uint32_t(at[1]) << 8 | uint32_t(at[2]) << 16 | uint32_t(at[3]) << 24;
}

// "uint8", "int32", "float64", "string", ... for error messages.
std::string describe_type(hid_t type);

// Class INTEGER with the given size and signedness (either byte order: HDF5 converts).
bool is_integer_type(hid_t type, size_t size, bool is_signed);

}  // namespace tessera::hdf5
