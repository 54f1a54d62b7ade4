#include <gtest/gtest.h>

#include <thread>

#include "core/timer.h"

namespace tessera {
namespace {

void sleepy_op() {
  TESSERA_PROFILE("test_family");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

TEST(Profiler, SumsTimePerFamilyOnlyWhenEnabled) {
  Profiler::reset();
  Profiler::enable(false);
  sleepy_op();
  EXPECT_TRUE(Profiler::entries().empty());
  Profiler::enable(true);
  sleepy_op();
  sleepy_op();
  Profiler::enable(false);
  auto entries = Profiler::entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].family, "test_family");
  EXPECT_EQ(entries[0].calls, 2);
  EXPECT_GE(entries[0].total_ns, 10'000'000);
  EXPECT_NE(Profiler::report().find("test_family"), std::string::npos);
}

}  // namespace
}  // namespace tessera
