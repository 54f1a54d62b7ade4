#pragma once
// Communication time of collectives that may be in flight together (GradSync's buckets, ZeRO-3's
// unit gathers and their per-bucket parts): the length of the union of their [started,
// completed] intervals, so two all-gathers progressing at once count once. Summing the
// intervals instead counts overlap twice and overstates the time, and with it the share of
// communication reported hidden (1 - wait / comm).

#include <cstdint>
#include <utility>
#include <vector>

namespace tessera::distributed {

class Work;

class BusyTime {
 public:
  // Records the operation's interval. One not completed as seen from the host (NCCL's wait()
  // orders the compute stream instead of blocking) has no interval and is not counted; one with
  // no start time counts from its completion (zero length).
  void add(const Work& work);
  void add(int64_t started_ns, int64_t completed_ns);
  // Nanoseconds covered by at least one recorded interval; forgets them.
  int64_t take_ns();

 private:
  std::vector<std::pair<int64_t, int64_t>> spans_;
};

}  // namespace tessera::distributed
