#pragma once
// Wall-clock timing and a small scoped profiler that sums time per op family.
//
//   { TESSERA_PROFILE("attention"); ... }   // adds the scope's time to "attention"
//   Profiler::enable(true); ...; std::cout << Profiler::report();
//
// Disabled (the default unless TESSERA_PROFILE=1 is set), a scope costs one relaxed load.
// CUDA work is asynchronous: the profiler times the host side of a launch, so on GPU it measures
// what the host waits for, not kernel time.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class Timer {
 public:
  Timer() : start_(now_ns()) {}
  void reset() { start_ = now_ns(); }
  double seconds() const { return double(now_ns() - start_) * 1e-9; }
  double ms() const { return double(now_ns() - start_) * 1e-6; }

 private:
  int64_t start_;
};

class Profiler {
 public:
  struct Entry {
    std::string family;
    int64_t calls = 0;
    int64_t total_ns = 0;
  };

  static void enable(bool on);
  static bool enabled() { return enabled_.load(std::memory_order_relaxed); }
  static void reset();
  static std::vector<Entry> entries();  // sorted by total time, largest first
  static std::string report();          // a table: family, calls, total ms, share

  // Index of `family` in the registry (registered once per call site).
  static int family_id(const char* family);
  static void add(int family, int64_t ns);

 private:
  static std::atomic<bool> enabled_;
};

class ProfileScope {
 public:
  explicit ProfileScope(int family) : family_(family), start_(Profiler::enabled() ? now_ns() : 0) {}
  ~ProfileScope() {
    if (start_) Profiler::add(family_, now_ns() - start_);
  }

 private:
  int family_;
  int64_t start_;
};

}  // namespace tessera

#define TESSERA_PROFILE_CAT2(a, b) a##b
#define TESSERA_PROFILE_CAT(a, b) TESSERA_PROFILE_CAT2(a, b)
#define TESSERA_PROFILE(family)                                    \
  static const int TESSERA_PROFILE_CAT(tessera_pf_id_, __LINE__) = \
      ::tessera::Profiler::family_id(family);                      \
  ::tessera::ProfileScope TESSERA_PROFILE_CAT(                     \
      tessera_pf_scope_, __LINE__)(TESSERA_PROFILE_CAT(tessera_pf_id_, __LINE__))
