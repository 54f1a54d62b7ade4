// RequestTable: requests found by window, numbered in order, trimmed oldest-finished first.
#include "data_pipeline/request_table.h"

#include <gtest/gtest.h>

namespace tessera::data {
namespace {

struct Job {
  int64_t seq = -1;
  bool done = false;
};

TEST(RequestTable, FindsByWindowAndNumbersInOrder) {
  RequestTable<Job> t(8);
  auto a = t.add({0, 4}, std::make_shared<Job>());
  auto b = t.add({4, 4}, std::make_shared<Job>());
  EXPECT_EQ(a->seq, 0);
  EXPECT_EQ(b->seq, 1);
  EXPECT_EQ(t.find({4, 4}), b);
  EXPECT_EQ(t.find({4, 2}), nullptr);  // same first, other count: another request
  EXPECT_TRUE(t.contains({0, 4}));
  t.take({0, 4});
  EXPECT_FALSE(t.contains({0, 4}));
  EXPECT_EQ(t.size(), 1u);
}

TEST(RequestTable, TrimsOldestFinishedFirstAndKeepsUnfinished) {
  RequestTable<Job> t(2);
  std::vector<std::shared_ptr<Job>> jobs;
  for (int64_t k = 0; k < 5; ++k) jobs.push_back(t.add({k * 10, 10}, std::make_shared<Job>()));
  jobs[3]->done = jobs[1]->done = jobs[4]->done = true;
  t.take({40, 10});  // 4 left; trim to 2: the finished 1 and then 3 go, unfinished 0 and 2 stay
  EXPECT_EQ(t.size(), 2u);
  EXPECT_TRUE(t.contains({0, 10}));
  EXPECT_TRUE(t.contains({20, 10}));
  // None finished: nothing can go, whatever the bound.
  RequestTable<Job> busy(1);
  for (int64_t k = 0; k < 3; ++k) busy.add({k, 1}, std::make_shared<Job>());
  busy.take({99, 1});
  EXPECT_EQ(busy.size(), 3u);
}

}  // namespace
}  // namespace tessera::data
