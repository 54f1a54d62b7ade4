// One process, no mpirun (ctest distributed_local_test): LocalCommunicator semantics, the 1x1
// layout, GradSync as a no-op, run_or_abort's single-process path.
#include <gtest/gtest.h>

#include "distributed/grad_sync.h"
#include "distributed/layout.h"
#include "distributed/local_communicator.h"
#include "tests/support/devices.h"

namespace tessera::distributed {
namespace {

Tensor iota(int64_t n, float start = 0, Device device = Device::cpu()) {
  Tensor t = Tensor::empty({n}, DType::f32);
  for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = start + float(i);
  return device.is_cpu() ? t : to_device(t, device);
}

float at(const Tensor& t, int64_t i) {
  return to_device(t.flat_view(i, {1}), Device::cpu()).data<float>()[0];
}

// The group of one on every device: tensors of a 1-rank GPU run go through it too.
class LocalOnDevice : public testing::DeviceTest {};

TEST_P(LocalOnDevice, CollectivesAndSelfMessagesOnTheDevice) {
  LocalCommunicator c("dp");
  Tensor t = iota(7, 1, device());
  c.all_reduce(t, ReduceOp::kAvg)->wait();
  EXPECT_EQ(at(t, 6), 7.0f);
  Tensor out = Tensor::zeros({7}, DType::f32, device());
  c.all_gather(t, out)->wait();
  EXPECT_EQ(at(out, 3), 4.0f);
  Tensor b = Tensor::zeros({7}, DType::f32, device());
  c.send(t, 0)->wait();
  zero_(t);  // the message was copied at send time
  c.recv(b, 0)->wait();
  EXPECT_EQ(at(b, 0), 1.0f);
  EXPECT_EQ(at(b, 6), 7.0f);
  EXPECT_THROW(c.all_reduce(Tensor::zeros({2}, DType::i32, device()), ReduceOp::kSum), Error);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(LocalOnDevice);

TEST(LocalCommunicator, CollectivesAreIdentitiesAndComplete) {
  LocalCommunicator c("dp");
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  EXPECT_EQ(c.name(), "dp");
  Tensor t = iota(7, 1);
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
    auto w = c.all_reduce(t, op);
    EXPECT_TRUE(w->done());
    w->wait();
  }
  for (int i = 0; i < 7; ++i) EXPECT_EQ(t.data<float>()[i], 1.0f + i);
  Tensor out = Tensor::zeros({7}, DType::f32);
  c.reduce_scatter(t, out, ReduceOp::kAvg)->wait();
  EXPECT_EQ(out.data<float>()[6], 7.0f);
  Tensor out2 = Tensor::zeros({7}, DType::f32);
  c.all_gather(t, out2)->wait();
  EXPECT_EQ(out2.data<float>()[3], 4.0f);
  c.broadcast(t, 0)->wait();
  c.barrier()->wait();
  EXPECT_EQ(c.last_sequence(), 7);
  EXPECT_THROW(c.broadcast(t, 1), Error);
  EXPECT_THROW(c.all_gather(t, Tensor::zeros({8}, DType::f32)), Error);
}

TEST(LocalCommunicator, SendToSelfThenRecv) {
  LocalCommunicator c;
  Tensor a = iota(5, 10), b = Tensor::zeros({5}, DType::f32);
  c.send(a, 0)->wait();
  a.data<float>()[0] = -1;  // the message was copied at send time
  c.recv(b, 0)->wait();
  EXPECT_EQ(b.data<float>()[0], 10.0f);
  EXPECT_EQ(b.data<float>()[4], 14.0f);
  EXPECT_THROW(c.recv(b, 0), Error);  // nothing queued
}

TEST(ParallelLayout, LocalIsOneByOne) {
  ParallelLayout layout = ParallelLayout::local();
  EXPECT_EQ(layout.world_size(), 1);
  EXPECT_EQ(layout.dp_size(), 1);
  EXPECT_EQ(layout.tp_size(), 1);
  EXPECT_EQ(layout.describe(), "world 1 = dp 1 x tp 1; rank 0: dp 0, tp 0");
  ParallelLayout moved = std::move(layout);
  EXPECT_EQ(moved.world().name(), "world");
  // A layout over a local world with T = 1 works; T = 2 cannot divide 1.
  LocalCommunicator world;
  ParallelLayout l1(world, 1);
  EXPECT_EQ(l1.tp_size(), 1);
  EXPECT_THROW(ParallelLayout(world, 2), Error);
}

TEST(GradSync, SingleRankLeavesGradientsAndCommunicatesNothing) {
  LocalCommunicator dp("dp");
  Tensor g = iota(100);
  GradSync sync(dp, g, 40);
  EXPECT_EQ(sync.num_buckets(), 10);
  sync.on_ready(55);
  sync.finish();
  EXPECT_EQ(g.data<float>()[99], 99.0f);
  EXPECT_EQ(dp.last_sequence(), 0);
  EXPECT_EQ(sync.stats().hidden_fraction(), 0.0);
  EXPECT_THROW(GradSync(dp, g, 2), Error);  // bucket smaller than one element
  EXPECT_THROW(GradSync(dp, Tensor::zeros({2, 3}, DType::f32)), Error);
}

TEST(RunOrAbort, SingleProcessReturnsOneAfterPrinting) {
  ::testing::internal::CaptureStderr();
  int rc = run_or_abort([]() -> int { throw Error("bad config field train.steps"); });
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 1);
  EXPECT_EQ(err, "rank 0: bad config field train.steps\n");
  EXPECT_EQ(run_or_abort([] { return 0; }), 0);
}

}  // namespace
}  // namespace tessera::distributed
