#pragma once
// The safetensors file format (8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw bytes). tessera uses it to exchange tensors
// with the PyTorch reference scripts in tests and, later, for `tessera export`.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"

namespace tessera {

using NamedTensors = std::map<std::string, Tensor>;

// Writes CPU or CUDA tensors (CUDA ones are copied to the host first). `metadata` becomes the
// header's "__metadata__" entry. Writes to PATH.tmp, then renames, so a reader never sees half a
// file.
absl::Status write_safetensors(const std::string& path, const NamedTensors& tensors,
                               const std::map<std::string, std::string>& metadata = {});

// The largest JSON header read_safetensors accepts (the 8-byte length field is read before
// anything is allocated): the limit of the reference implementation (huggingface/safetensors),
// far above any real header (~100 bytes per tensor).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Reads every tensor into CPU memory. Errors name the file and the tensor.
absl::StatusOr<NamedTensors> read_safetensors(const std::string& path);

}  // namespace tessera
