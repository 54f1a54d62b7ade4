#include "data_pipeline/hdf5_util.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tessera::data {

H5Handle& H5Handle::operator=(H5Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void H5Handle::reset() {
  if (id_ >= 0) H5Idec_ref(id_);
  id_ = H5I_INVALID_HID;
}

H5Quiet::H5Quiet() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  H5Eclear2(H5E_DEFAULT);
}

H5Quiet::~H5Quiet() {
  H5Eset_auto2(H5E_DEFAULT, func_, data_);
}

namespace {

herr_t collect(unsigned /*n*/, const H5E_error2_t* err, void* out) {
  auto* lines = static_cast<std::vector<std::string>*>(out);
  // Nested HDF5 layers often repeat the same description; keep one.
  if (err->desc != nullptr && err->desc[0] != '\0' &&
      (lines->empty() || lines->back() != err->desc))
    lines->push_back(err->desc);
  return 0;
}

std::vector<std::string> error_lines() {
  std::vector<std::string> lines;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect, &lines);
  return lines;
}

}  // namespace

std::string h5_error_text() {
  std::string text = absl::StrJoin(error_lines(), "; ");
  H5Eclear2(H5E_DEFAULT);
  return text;
}

bool h5_error_is_checksum() {
  // Walk the minor error numbers: a failed Fletcher32 verification is reported by the filter
  // pipeline as H5E_READERROR with "data error detected by Fletcher32 checksum".
  bool found = false;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned, const H5E_error2_t* err, void* out) -> herr_t {
        std::string desc = err->desc != nullptr ? err->desc : "";
        if (desc.find("Fletcher32") != std::string::npos ||
            desc.find("checksum") != std::string::npos)
          *static_cast<bool*>(out) = true;
        return 0;
      },
      &found);
  return found;
}

std::string describe_type(hid_t type) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  switch (cls) {
    case H5T_INTEGER:
      return absl::StrCat(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", size * 8);
    case H5T_FLOAT:
      return absl::StrCat("float", size * 8);
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_VLEN:
      return "vlen";
    default:
      return absl::StrCat("HDF5 type class ", static_cast<int>(cls));
  }
}

bool is_integer_type(hid_t type, size_t size, bool is_signed) {
  return H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == size &&
         (H5Tget_sign(type) == H5T_SGN_2) == is_signed;
}

uint32_t fletcher32(const uint8_t* data, size_t bytes) {
  // Sums stay below 2^32 for 360 words between folds (the bound HDF5 uses).
  uint32_t sum1 = 0, sum2 = 0;
  for (size_t words = bytes / 2; words > 0;) {
    const size_t n = words < 360 ? words : 360;
    words -= n;
    for (size_t i = 0; i < n; ++i, data += 2) {
      sum1 += (uint32_t(data[0]) << 8) | uint32_t(data[1]);
      sum2 += sum1;
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  if (bytes % 2) {  // a last odd byte is the high half of a word
    sum1 += uint32_t(*data) << 8;
    sum2 += sum1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  sum1 = (sum1 & 0xffff) + (sum1 >> 16);
  sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  return (sum2 << 16) | sum1;
}

}  // namespace tessera::data
