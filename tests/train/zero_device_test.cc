// ZeroAdamW with its parameters, moments, mask and shard buffers on every device: over data-
// parallel groups of 1, 2 and 3 ranks run as threads of this process (so the CUDA variant needs
// neither MPI nor NCCL), with buckets that leave a padded last bucket and ranks owning nothing of
// it, it equals AdamW on the CPU given the averaged gradients; every rank ends with the same
// parameters bit for bit.
//
// The group is a test double (tests/support/thread_group.h): each collective is a rendezvous of
// the threads that copies with copy() (any device). ZeroAdamW issues all_gather itself (the
// parameters, and the norm's partial sums on the host); the gradient shards it would get from
// GradSync's reduce-scatter are written here directly.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "models/param_store.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/thread_group.h"
#include "tests/train/zero_test_support.h"
#include "train/optimizer.h"
#include "train/zero_optimizer.h"

namespace tessera::train {
namespace {

using testing::Rendezvous;
using testing::ThreadRank;

// The store of zero_test.cc: 289 elements (divisible by neither 2 nor 3), all three decay groups.
// The averaged gradient of a step: multiples of 1/64, on the host.
Tensor averaged_grads(int64_t n, int step) {
  Tensor g = Tensor::empty({n}, DType::f32);
  for (int64_t i = 0; i < n; ++i) g.data<float>()[i] = float(((i * 7 + step * 5) % 41) - 20) / 64;
  return g;
}

class ZeroDeviceTest : public testing::DeviceTest {};

TEST_P(ZeroDeviceTest, EqualsCpuAdamWForGroupsOfOneTwoAndThreeRanks) {
  // CPU: the same kernel as AdamW, only the norm's summation order differs (1e-6, as zero_test).
  // CUDA: the device's AdamW kernel against the CPU's, both f32 (1e-5, ops/adamw_test's bound).
  const double rtol = device().is_cpu() ? 1e-6 : 1e-5;
  for (const int dp : {1, 2, 3}) {
    for (const int64_t bucket_bytes : {int64_t(4), int64_t(4 * 23), int64_t(4 * 1000)}) {
      for (const float clip : {0.0f, 0.5f}) {
        SCOPED_TRACE(absl::StrCat("dp ", dp, " bucket_bytes ", bucket_bytes, " clip ", clip));
        const config::OptimConfig oc = testing_support::zero_test_optim(clip);
        auto ref = testing_support::odd_store(Device::cpu());
        AdamW adamw(*ref, oc);
        Rendezvous group(dp);
        std::vector<std::unique_ptr<ThreadRank>> comms;
        std::vector<std::unique_ptr<models::ParamStore>> stores;
        std::vector<std::unique_ptr<ZeroAdamW>> zeros;
        for (int r = 0; r < dp; ++r) {
          comms.push_back(std::make_unique<ThreadRank>(group, r, "dp"));
          stores.push_back(testing_support::odd_store(device()));
          zeros.push_back(std::make_unique<ZeroAdamW>(*stores[r], oc, *comms[r], bucket_bytes));
          EXPECT_EQ(zeros[r]->m().device(), device());
          EXPECT_EQ(zeros[r]->shard_grads().device(), device());
        }
        for (int step = 1; step <= 3; ++step) {
          const Tensor g = averaged_grads(ref->numel(), step);
          copy(g, ref->grads());
          // What GradSync's reduce-scatter leaves in each rank's shard buffer (padding stays 0).
          for (int r = 0; r < dp; ++r) {
            for (const auto& b : zeros[r]->shards().buckets) {
              if (b.own() == 0) continue;
              copy(g.flat_view(b.own_begin, {b.own()}),
                   zeros[r]->shard_grads().flat_view(b.offset, {b.own()}));
            }
          }
          std::vector<StepStats> stats(dp);
          std::vector<std::string> errors(dp);
          std::vector<std::thread> threads;
          for (int r = 0; r < dp; ++r) {
            threads.emplace_back([&, r] {
              try {
                stats[r] = zeros[r]->step(0.01);
              } catch (const std::exception& e) {
                errors[r] = e.what();
                group.fail();
              }
            });
          }
          for (auto& t : threads) t.join();
          const StepStats want = adamw.step(0.01);
          for (int r = 0; r < dp; ++r) {
            ASSERT_EQ(errors[r], "") << "rank " << r;
            ASSERT_TRUE(stats[r].applied) << "rank " << r;
            EXPECT_EQ(stats[r].grad_norm, stats[0].grad_norm) << "rank " << r;
            EXPECT_NEAR(stats[r].grad_norm, want.grad_norm, 1e-6 * want.grad_norm);
            EXPECT_ALL_CLOSE(stores[r]->params(), ref->params(), rtol,
                             absl::StrCat("rank ", r, " step ", step));
          }
        }
        const Tensor p0 = to_device(stores[0]->params(), Device::cpu());
        for (int r = 1; r < dp; ++r) {
          const Tensor pr = to_device(stores[r]->params(), Device::cpu());
          EXPECT_EQ(0, std::memcmp(p0.raw_data(), pr.raw_data(), p0.nbytes()))
              << "rank " << r << " differs from rank 0";
        }
      }
    }
  }
}

TESSERA_INSTANTIATE_DEVICE_TESTS(ZeroDeviceTest);

}  // namespace
}  // namespace tessera::train
