#pragma once
// Errors inside a step are exceptions carrying a message that names the op, tensor, file or
// rank (docs/DESIGN.md decision 7); boundaries (config parsing, files) return absl::Status instead.

#include <stdexcept>
#include <string>

#include "absl/strings/str_cat.h"

namespace tessera {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_error(std::string message);

}  // namespace tessera

// TESSERA_CHECK(cond, "message parts", ...): throws tessera::Error with the parts concatenated.
#define TESSERA_CHECK(cond, ...)                         \
  do {                                                   \
    if (!(cond)) [[unlikely]]                            \
      ::tessera::throw_error(absl::StrCat(__VA_ARGS__)); \
  } while (0)
