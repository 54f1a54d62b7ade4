// distributed::BusyTime: the communication time of collectives in flight together is the union
// of their intervals, checked against a brute-force count over a nanosecond grid.

#include "distributed/busy_time.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "distributed/communicator.h"

namespace tessera::distributed {
namespace {

TEST(BusyTime, OverlapCountsOnce) {
  BusyTime t;
  t.add(10, 20);
  t.add(15, 30);  // overlaps the first
  t.add(12, 14);  // inside the first
  t.add(40, 45);  // apart
  EXPECT_EQ(t.take_ns(), 25);
  EXPECT_EQ(t.take_ns(), 0) << "take_ns() forgets what it counted";
}

TEST(BusyTime, TouchingIntervalsJoin) {
  BusyTime t;
  t.add(5, 10);
  t.add(10, 20);
  EXPECT_EQ(t.take_ns(), 15);
}

TEST(BusyTime, IncompleteWorkIsNotCountedAndUnstartedIsZeroLength) {
  BusyTime t;
  Work in_flight("all_gather still in flight");
  in_flight.mark_started(100);
  t.add(in_flight);  // NCCL, seen from the host: no completion yet
  Work never_started("completed without a start time");
  never_started.complete(500);
  t.add(never_started);
  Work done("all_gather done");
  done.mark_started(200);
  done.complete(260);
  t.add(done);
  EXPECT_EQ(t.take_ns(), 60);
}

TEST(BusyTime, EqualsBruteForceOnRandomIntervals) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<char> covered(1000, 0);
    BusyTime t;
    const int n = 1 + int(rng() % 12);
    for (int i = 0; i < n; ++i) {
      const int64_t b = 1 + rng() % 900, e = b + rng() % 100;
      for (int64_t x = b; x < e; ++x) covered[x] = 1;
      t.add(b, e);
    }
    int64_t want = 0;
    for (char c : covered) want += c;
    EXPECT_EQ(t.take_ns(), want) << "trial " << trial;
  }
}

}  // namespace
}  // namespace tessera::distributed
