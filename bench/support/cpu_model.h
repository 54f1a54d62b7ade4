#pragma once
// The CPU's model name, as lscpu's "Model name" shows it (from /proc/cpuinfo), for benchmarks to
// name the machine their figures come from.
#include <fstream>
#include <string>

namespace tessera::bench {

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

}  // namespace tessera::bench
