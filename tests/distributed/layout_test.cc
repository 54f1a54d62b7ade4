// ParallelLayout on 4 ranks (ctest distributed_layout_test): the TP and DP groups for T = 1, 2, 4
// hold the right world ranks (checked by all-gathering world ranks over each group), and T = 3
// fails naming both numbers.
#include <gtest/gtest.h>

#include "distributed/layout.h"
#include "tests/distributed/mpi_test_env.h"

namespace tessera::distributed {
namespace {

std::vector<int> gather_world_ranks(Communicator& group, int world_rank) {
  Tensor in = Tensor::empty({1}, DType::f32);
  in.data<float>()[0] = float(world_rank);
  Tensor out = Tensor::zeros({group.size()}, DType::f32);
  group.all_gather(in, out)->wait();
  std::vector<int> ranks;
  for (int i = 0; i < group.size(); ++i) ranks.push_back(int(out.data<float>()[i]));
  return ranks;
}

TEST(ParallelLayout, GroupsForEveryDivisor) {
  auto world = testing::test_world();
  ASSERT_EQ(world->size(), 4) << "run with mpirun -np 4";
  const int r = world->rank();
  for (int T : {1, 2, 4}) {
    ParallelLayout layout(*world, T);
    SCOPED_TRACE(layout.describe());
    EXPECT_EQ(layout.tp_size(), T);
    EXPECT_EQ(layout.dp_size(), 4 / T);
    EXPECT_EQ(layout.tp_rank(), r % T);
    EXPECT_EQ(layout.dp_rank(), r / T);
    EXPECT_EQ(layout.tp().name(), "tp");
    EXPECT_EQ(layout.dp().name(), "dp");
    std::vector<int> tp_want, dp_want;
    for (int i = 0; i < T; ++i) tp_want.push_back((r / T) * T + i);    // adjacent
    for (int i = 0; i < 4 / T; ++i) dp_want.push_back(r % T + i * T);  // strided
    EXPECT_EQ(gather_world_ranks(layout.tp(), r), tp_want);
    EXPECT_EQ(gather_world_ranks(layout.dp(), r), dp_want);
    for (int i = 0; i < layout.tp_size(); ++i) EXPECT_EQ(layout.tp().world_rank_of(i), tp_want[i]);
  }
}

TEST(ParallelLayout, IndivisibleTensorParallelNamesBoth) {
  auto world = testing::test_world();
  try {
    ParallelLayout layout(*world, 3);
    FAIL() << "no error for T = 3 on " << world->size() << " ranks";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("tensor_parallel = 3"), std::string::npos) << m;
    EXPECT_NE(m.find("world size 4"), std::string::npos) << m;
  }
  EXPECT_THROW(ParallelLayout(*world, 0), Error);
}

}  // namespace
}  // namespace tessera::distributed
