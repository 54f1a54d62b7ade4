#include "distributed/busy_time.h"

#include <algorithm>

#include "distributed/communicator.h"

namespace tessera::distributed {

void BusyTime::add(const Work& work) {
  add(work.started_ns(), work.completed_ns());
}

void BusyTime::add(int64_t started_ns, int64_t completed_ns) {
  if (completed_ns <= 0) return;
  spans_.emplace_back(started_ns > 0 ? started_ns : completed_ns, completed_ns);
}

int64_t BusyTime::take_ns() {
  std::sort(spans_.begin(), spans_.end());
  int64_t busy = 0, begin = 0, end = -1;
  for (const auto& [b, e] : spans_) {
    if (b > end) {
      if (end >= 0) busy += end - begin;
      begin = b;
      end = e;
    } else {
      end = std::max(end, e);
    }
  }
  if (end >= 0) busy += end - begin;
  spans_.clear();
  return busy;
}

}  // namespace tessera::distributed
