// ReadAhead: the request asked for runs before the read-ahead, read-ahead runs in position
// order, a window the positions end at stops it, and requests read ahead are found later.
#include "data_pipeline/read_ahead.h"

#include <gtest/gtest.h>

#include <mutex>
#include <vector>

namespace tessera::data {
namespace {

struct Job {
  int64_t first = 0, count = 0, seq = 0;
  bool done = false;
  int64_t result = -1;
};

using Window = ReadAhead<Job>::Window;

absl::StatusOr<std::shared_ptr<Job>> make(Window w) {
  auto job = std::make_shared<Job>();
  job->first = w.first;
  job->count = w.second;
  return job;
}

// One worker that records the order it runs jobs in.
struct Recorder {
  std::mutex mu;
  std::vector<int64_t> ran;
  ReadAhead<Job>::Run run() {
    return [this](Job& job) {
      job.result = job.first * 10;
      std::lock_guard lock(mu);
      ran.push_back(job.first);
    };
  }
};

TEST(ReadAhead, RunsTheRequestFirstThenReadsAheadInOrder) {
  Recorder r;
  ReadAhead<Job> engine(1, 16, [&r] { return r.run(); });
  auto first = engine.take({8, 4}, /*stride=*/8, /*ahead=*/3, make);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->was_queued);
  EXPECT_EQ(first->job->result, 80);
  auto next = engine.take({16, 4}, 8, 0, make);  // read ahead by the first call
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(next->was_queued);
  EXPECT_EQ(next->job->result, 160);
  auto later = engine.take({32, 4}, 8, 0, make);
  ASSERT_TRUE(later.ok());
  EXPECT_TRUE(later->was_queued);
  std::lock_guard lock(r.mu);
  EXPECT_EQ(r.ran, (std::vector<int64_t>{8, 16, 24, 32}));
}

TEST(ReadAhead, StopsReadingAheadWhereThePositionsEnd) {
  Recorder r;
  ReadAhead<Job> engine(2, 16, [&r] { return r.run(); });
  auto bounded = [](Window w) -> absl::StatusOr<std::shared_ptr<Job>> {
    if (w.first + w.second > 20) return absl::OutOfRangeError("past the end");
    return make(w);
  };
  auto last = engine.take({12, 4}, 4, 4, bounded);  // reads ahead 16 only
  ASSERT_TRUE(last.ok());
  auto past = engine.take({20, 4}, 4, 4, bounded);
  EXPECT_EQ(past.status().code(), absl::StatusCode::kOutOfRange);
  auto ahead = engine.take({16, 4}, 4, 0, bounded);
  ASSERT_TRUE(ahead.ok());
  EXPECT_TRUE(ahead->was_queued);
}

TEST(ReadAhead, StopsWithRequestsStillQueued) {
  Recorder r;
  {
    ReadAhead<Job> engine(1, 4, [&r] { return r.run(); });
    ASSERT_TRUE(engine.take({0, 1}, 1, 64, make).ok());
  }  // the destructor returns: queued requests are dropped, running ones end
  std::lock_guard lock(r.mu);
  EXPECT_GE(r.ran.size(), 1u);
  EXPECT_EQ(r.ran.front(), 0);
}

}  // namespace
}  // namespace tessera::data
