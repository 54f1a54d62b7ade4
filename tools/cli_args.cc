#include "tools/cli_args.h"

#include <cstdio>
#include <cstdlib>

#include "core/allocator.h"

namespace tessera::tools {

std::string CliArgs::get(const std::string& flag, const std::string& fallback) const {
  auto it = values.find(flag);
  return it == values.end() || it->second.empty() ? fallback : it->second.back();
}

bool parse_cli_args(const char* verb, int argc, char** argv, int first,
                    const std::set<std::string>& valued, const std::set<std::string>& switches,
                    CliArgs* out, int max_positional) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out->help = true;
      continue;
    }
    if (arg.empty() || arg[0] != '-' || arg == "-") {
      if (int(out->positional.size()) >= max_positional) {
        std::fprintf(stderr, "tessera %s: unexpected argument '%s' (see tessera %s --help)\n", verb,
                     arg.c_str(), verb);
        return false;
      }
      out->positional.push_back(arg);
      continue;
    }
    std::string flag = arg, value;
    bool inline_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inline_value = true;
    }
    if (switches.count(flag)) {
      if (inline_value) {
        std::fprintf(stderr, "tessera %s: %s takes no value\n", verb, flag.c_str());
        return false;
      }
      out->switches.insert(flag);
    } else if (valued.count(flag)) {
      if (!inline_value) {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "tessera %s: %s needs a value\n", verb, flag.c_str());
          return false;
        }
        value = argv[++i];
      }
      out->values[flag].push_back(value);
    } else {
      std::fprintf(stderr, "tessera %s: unknown option %s (see tessera %s --help)\n", verb,
                   flag.c_str(), verb);
      return false;
    }
  }
  return true;
}

bool int_flag(const CliArgs& a, const char* verb, const std::string& flag, long long fallback,
              long long* out) {
  const std::string s = a.get(flag);
  if (s.empty()) {
    *out = fallback;
    return true;
  }
  char* end = nullptr;
  *out = std::strtoll(s.c_str(), &end, 10);
  if (end == s.c_str() || *end != '\0' || *out < 0) {
    std::fprintf(stderr, "tessera %s: %s '%s' is not a whole number >= 0\n", verb, flag.c_str(),
                 s.c_str());
    return false;
  }
  return true;
}

bool float_flag(const CliArgs& a, const char* verb, const std::string& flag, double fallback,
                double* out) {
  const std::string s = a.get(flag);
  if (s.empty()) {
    *out = fallback;
    return true;
  }
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0') {
    std::fprintf(stderr, "tessera %s: %s '%s' is not a number\n", verb, flag.c_str(), s.c_str());
    return false;
  }
  return true;
}

bool device_flag(const CliArgs& a, const char* verb, Device* out) {
  const std::string s = a.get("--device", "cpu");
  if (s == "cpu") {
    *out = Device::cpu();
    return true;
  }
  int index = 0;
  if (s.rfind("cuda", 0) != 0 ||
      (s.size() > 4 && (s[4] != ':' || s.size() == 5 ||
                        s.find_first_not_of("0123456789", 5) != std::string::npos))) {
    std::fprintf(stderr, "tessera %s: --device '%s' is not cpu, cuda or cuda:N\n", verb, s.c_str());
    return false;
  }
  if (s.size() > 5) index = std::atoi(s.c_str() + 5);
  if (!cuda_compiled()) {
    std::fprintf(stderr,
                 "tessera %s: --device %s: this build has no CUDA support (configure with "
                 "TESSERA_CUDA=ON)\n",
                 verb, s.c_str());
    return false;
  }
  const int n = cuda_device_count();
  if (index >= n) {
    std::fprintf(stderr, "tessera %s: --device %s: this machine has %d CUDA device%s\n", verb,
                 s.c_str(), n, n == 1 ? "" : "s");
    return false;
  }
  *out = Device::cuda(index);
  make_current(*out);
  return true;
}

}  // namespace tessera::tools
