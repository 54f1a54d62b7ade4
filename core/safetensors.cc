#include "core/safetensors.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace tessera {
namespace {

const char* st_dtype(DType d) {
  switch (d) {
    case DType::f32:
      return "F32";
    case DType::bf16:
      return "BF16";
    case DType::f16:
      return "F16";
    case DType::i32:
      return "I32";
    case DType::i64:
      return "I64";
    case DType::u8:
      return "U8";
  }
  return "?";
}

bool parse_st_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> kTable[] = {{"F32", DType::f32}, {"BF16", DType::bf16},
                                                         {"F16", DType::f16}, {"I32", DType::i32},
                                                         {"I64", DType::i64}, {"U8", DType::u8}};
  for (const auto& [name, d] : kTable) {
    if (s == name) {
      *out = d;
      return true;
    }
  }
  return false;
}

}  // namespace

absl::Status write_safetensors(const std::string& path, const NamedTensors& tensors,
                               const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", st_dtype(t.dtype())},
                    {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string head = header.dump();
  head.append((8 - head.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return absl::InternalError(absl::StrCat(tmp, ": cannot open for writing"));
    uint64_t n = head.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(head.data(), static_cast<std::streamsize>(head.size()));
    for (const auto& [name, t] : tensors) {
      Tensor host = t.device().is_cpu() ? t : to_device(t, Device::cpu());
      f.write(static_cast<const char*>(host.raw_data()), static_cast<std::streamsize>(t.nbytes()));
    }
    f.flush();
    if (!f) return absl::InternalError(absl::StrCat(tmp, ": write failed (disk full?)"));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat(path, ": rename failed: ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<NamedTensors> read_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  f.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(f.tellg());
  f.seekg(0);
  uint64_t n = 0;
  if (file_size < 8 || !f.read(reinterpret_cast<char*>(&n), 8) || n > file_size - 8) {
    return absl::DataLossError(absl::StrCat(path, ": not a safetensors file (bad header length)"));
  }
  if (n > kMaxSafetensorsHeaderBytes) {
    return absl::DataLossError(absl::StrCat(
        path, ": header length ", n, " bytes exceeds the limit of ", kMaxSafetensorsHeaderBytes));
  }
  std::string head(n, '\0');
  f.read(head.data(), static_cast<std::streamsize>(n));
  nlohmann::json header = nlohmann::json::parse(head, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": header is not a JSON object"));
  }
  const uint64_t data_start = 8 + n;
  const uint64_t data_size = file_size - data_start;
  NamedTensors out;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    auto bad_entry = [&, tensor = std::string(name)](const std::string& what) {
      return absl::DataLossError(absl::StrCat(path, ": tensor '", tensor, "': ", what));
    };
    // Every field is checked for its JSON type before it is read (nlohmann's get<> throws on a
    // mismatch) and the sizes before anything is allocated.
    if (!entry.is_object()) return bad_entry("entry is not a JSON object");
    DType dtype;
    if (!entry.contains("dtype") || !entry["dtype"].is_string() ||
        !parse_st_dtype(entry["dtype"].get<std::string>(), &dtype)) {
      return bad_entry("missing or unsupported dtype");
    }
    const auto shape_json = entry.find("shape");
    if (shape_json == entry.end() || !shape_json->is_array())
      return bad_entry("field 'shape' is missing or not an array");
    Shape shape;
    uint64_t numel = 1;
    for (const auto& d : *shape_json) {
      if (!d.is_number_unsigned())
        return bad_entry("field 'shape' holds a non-integer or negative");
      const uint64_t v = d.get<uint64_t>();
      // Bounded by the data section's size (no tensor can be larger than the file).
      if (v > data_size || (v > 0 && numel > data_size / v))
        return bad_entry(absl::StrCat("field 'shape' asks for more elements than the file holds"));
      numel *= v;
      shape.push_back(int64_t(v));
    }
    const auto offs_json = entry.find("data_offsets");
    if (offs_json == entry.end() || !offs_json->is_array() || offs_json->size() != 2 ||
        !(*offs_json)[0].is_number_unsigned() || !(*offs_json)[1].is_number_unsigned())
      return bad_entry("field 'data_offsets' is not two non-negative integers");
    const uint64_t offs[2] = {(*offs_json)[0].get<uint64_t>(), (*offs_json)[1].get<uint64_t>()};
    const uint64_t bytes = numel * dtype_size(dtype);
    if (offs[1] < offs[0] || offs[1] > data_size || offs[1] - offs[0] != bytes) {
      return absl::DataLossError(
          absl::StrCat(path, ": tensor '", name, "' ", dtype_name(dtype), shape_str(shape),
                       " has data_offsets outside the file or of the wrong size"));
    }
    Tensor t = Tensor::empty(shape, dtype);
    f.seekg(static_cast<std::streamoff>(data_start + offs[0]));
    if (!f.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(bytes))) {
      return absl::DataLossError(absl::StrCat(path, ": tensor '", name, "' is truncated"));
    }
    out.emplace(name, std::move(t));
  }
  return out;
}

}  // namespace tessera
