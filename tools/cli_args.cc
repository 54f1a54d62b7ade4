#include "tools/cli_args.h"

#include <cstdio>
#include <cstdlib>

namespace tessera::tools {

std::string CliArgs::get(const std::string& flag, const std::string& fallback) const {
  auto it = values.find(flag);
  return it == values.end() || it->second.empty() ? fallback : it->second.back();
}

bool parse_cli_args(const char* verb, int argc, char** argv, int first,
                    const std::set<std::string>& valued, const std::set<std::string>& switches,
                    CliArgs* out) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out->help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
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
    if (switches.count(flag) && !inline_value) {
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

}  // namespace tessera::tools
