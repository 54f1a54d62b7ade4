#pragma once
// Flag parsing shared by every verb of the `tessera` command: `--flag VALUE`, `--flag=VALUE`,
// repeatable flags, boolean switches, `-h`/`--help` and positional arguments. Unknown flags
// (`-x` included), a flag without its value, a switch with one, more positional arguments than the
// verb takes and bad numbers are errors naming the verb and the flag or argument.

#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "core/dtype.h"

namespace tessera::tools {

struct CliArgs {
  std::map<std::string, std::vector<std::string>> values;
  std::set<std::string> switches;
  std::vector<std::string> positional;
  bool help = false;

  std::string get(const std::string& flag, const std::string& fallback = "") const;
  bool has(const std::string& flag) const { return values.count(flag) || switches.count(flag); }
};

// Parses argv[first..argc) for `tessera VERB`, which takes the flags `valued` (with a value) and
// `switches`, and at most `max_positional` positional arguments (a lone `-` counts as one).
// Returns false (after printing why, to stderr) on a bad command line; the verb then exits 1.
bool parse_cli_args(const char* verb, int argc, char** argv, int first,
                    const std::set<std::string>& valued, const std::set<std::string>& switches,
                    CliArgs* out, int max_positional = 0);

// The flag's value (or `fallback` when absent) as a whole number >= 0 / a number; prints the
// error naming the verb and the flag and returns false when it is not one.
bool int_flag(const CliArgs& a, const char* verb, const std::string& flag, long long fallback,
              long long* out);
bool float_flag(const CliArgs& a, const char* verb, const std::string& flag, double fallback,
                double* out);

// The flag's value as a T (integral or floating point); leaves *out unchanged when the flag is
// absent; prints the error naming the verb and the flag and returns false when it is no number.
template <typename T>
bool number_flag(const CliArgs& a, const char* verb, const std::string& flag, T* out) {
  const std::string s = a.get(flag);
  if (s.empty()) return true;
  char* end = nullptr;
  if constexpr (std::is_floating_point_v<T>) {
    *out = T(std::strtod(s.c_str(), &end));
  } else {
    *out = T(std::strtoll(s.c_str(), &end, 10));
  }
  if (end == s.c_str() || *end != '\0') {
    std::fprintf(stderr, "tessera %s: %s '%s' is not a number\n", verb, flag.c_str(), s.c_str());
    return false;
  }
  return true;
}

// --device cpu|cuda|cuda:N (absent: cpu): where a tool builds its model; batches stay on the host
// and the model copies them over. Prints the error naming the verb and the flag and returns
// false for another value, a CUDA device in a build without CUDA, or one the machine lacks.
bool device_flag(const CliArgs& a, const char* verb, Device* out);

// Prints "tessera VERB: MESSAGE" to stderr and returns exit status 1 (docs/DESIGN.md: an error).
inline int fail(const char* verb, const std::string& message) {
  std::fprintf(stderr, "tessera %s: %s\n", verb, message.c_str());
  return 1;
}
inline int fail(const char* verb, const absl::Status& s) {
  return fail(verb, std::string(s.message()));
}

}  // namespace tessera::tools
