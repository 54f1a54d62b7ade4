#include "core/timer.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "absl/strings/str_format.h"
#include "core/error.h"

namespace tessera {
namespace {

constexpr int kMaxFamilies = 128;

struct Registry {
  std::mutex mutex;
  std::vector<std::string> names;
  std::array<std::atomic<int64_t>, kMaxFamilies> calls{};
  std::array<std::atomic<int64_t>, kMaxFamilies> total_ns{};
};

Registry& registry() {
  static Registry r;
  return r;
}

bool enabled_from_env() {
  const char* v = std::getenv("TESSERA_PROFILE");
  return v != nullptr && std::strcmp(v, "0") != 0 && *v != '\0';
}

}  // namespace

std::atomic<bool> Profiler::enabled_{enabled_from_env()};

void Profiler::enable(bool on) {
  enabled_.store(on, std::memory_order_relaxed);
}

int Profiler::family_id(const char* family) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (size_t i = 0; i < r.names.size(); ++i) {
    if (r.names[i] == family) return static_cast<int>(i);
  }
  TESSERA_CHECK(r.names.size() < kMaxFamilies, "profiler: more than ", kMaxFamilies,
                " op families");
  r.names.emplace_back(family);
  return static_cast<int>(r.names.size() - 1);
}

void Profiler::add(int family, int64_t ns) {
  Registry& r = registry();
  r.calls[family].fetch_add(1, std::memory_order_relaxed);
  r.total_ns[family].fetch_add(ns, std::memory_order_relaxed);
}

void Profiler::reset() {
  Registry& r = registry();
  for (int i = 0; i < kMaxFamilies; ++i) {
    r.calls[i] = 0;
    r.total_ns[i] = 0;
  }
}

std::vector<Profiler::Entry> Profiler::entries() {
  Registry& r = registry();
  std::vector<Entry> out;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    for (size_t i = 0; i < r.names.size(); ++i) {
      if (r.calls[i] > 0) out.push_back({r.names[i], r.calls[i].load(), r.total_ns[i].load()});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Entry& a, const Entry& b) { return a.total_ns > b.total_ns; });
  return out;
}

std::string Profiler::report() {
  std::vector<Entry> es = entries();
  int64_t total = 0;
  for (const Entry& e : es) total += e.total_ns;
  std::string out =
      absl::StrFormat("%-24s %10s %12s %7s\n", "op family", "calls", "total ms", "share");
  for (const Entry& e : es) {
    absl::StrAppendFormat(&out, "%-24s %10d %12.3f %6.1f%%\n", e.family, e.calls, e.total_ns * 1e-6,
                          total ? 100.0 * double(e.total_ns) / double(total) : 0.0);
  }
  return out;
}

}  // namespace tessera
