// Multi-rank training on every device (train.device), under mpirun -np 2: data parallel (with
// ZeRO-1, ZeRO-2 with two micro-batches, and CLIP's loss over the global batch) and tensor parallel
// runs on device() end where one CPU process on the whole batch ends. On CUDA this is the NCCL path
// of the trainer (device tensors over NCCL, host values over MPI:
// distributed/routed_communicator.h) and needs one GPU per rank (NCCL refuses two ranks on one
// device); without them the variant is skipped with that reason. The CPU variant runs everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "distributed/make_communicator.h"
#include "nlohmann/json.hpp"
#include "tests/distributed/mpi_test_env.h"
#include "tests/support/devices.h"
#include "tests/train/parallel_device_fixture.h"
#include "tests/train/train_test_support.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

using testing_support::load;

class ParallelDeviceTest : public testing_support::ParallelDeviceTest {
 protected:
  // Trains `file` with `sets` on every rank on device(), and alone on rank 0 on the CPU; the
  // parameters agree to `rtol` of their largest magnitude.
  void expect_equals_one_cpu_process(const std::string& file, std::vector<std::string> sets,
                                     const std::string& name) {
    auto comm = world();
    const std::string base =
        testing_support::run_dir("parallel_device_" + device().str() + "_" + name);
    std::vector<std::string> on_device = sets;
    on_device.push_back(std::string("train.device=") + (device().is_cpu() ? "CPU" : "CUDA"));
    // Rank 0 writes the run directory; the single-process reference gets its own.
    if (comm->rank() == 0) {
      std::filesystem::remove_all(base);
      std::filesystem::remove_all(base + "_single");
    }
    // EXPECT, not ASSERT, up to the barrier: a rank returning early would leave its peer waiting
    // in a collective until the watchdog ends the job, hiding the failure.
    Trainer parallel(load(file, on_device), base, true, comm.get());
    const bool trained = parallel.run() == kExitOk;
    EXPECT_TRUE(trained) << name << ": the parallel run failed";
    const Tensor mine = to_device(parallel.model().params().params(), Device::cpu());
    if (trained && comm->rank() == 0) {
      // The reference is unsplit: drop the parallel settings.
      std::vector<std::string> single_sets;
      for (const auto& s : sets)
        if (s.rfind("parallel.", 0) != 0) single_sets.push_back(s);
      Trainer single(load(file, single_sets), base + "_single", true);
      EXPECT_EQ(single.run(), kExitOk);
      const Tensor& ref = single.model().params().params();
      if (parallel.layout().tp_size() == 1) {
        EXPECT_EQ(ref.numel(), mine.numel());
      }
      if (parallel.layout().tp_size() == 1 && ref.numel() == mine.numel()) {
        double max_diff = 0, scale = 0;
        for (int64_t i = 0; i < ref.numel(); ++i) {
          max_diff =
              std::max(max_diff, double(std::fabs(mine.data<float>()[i] - ref.data<float>()[i])));
          scale = std::max(scale, double(std::fabs(ref.data<float>()[i])));
        }
        // CPU: the same sums in another order. CUDA: other kernels too (see trainer_device_test).
        EXPECT_LT(max_diff / scale, device().is_cpu() ? 1e-6 : 1e-3) << name;
      }
    }
    // Tensor parallel: compare the losses instead of reassembling shards.
    if (trained && parallel.layout().tp_size() > 1 && comm->rank() == 0) {
      std::ifstream a(base + "/metrics.jsonl"), b(base + "_single/metrics.jsonl");
      std::string la, lb;
      int rows = 0;
      while (std::getline(a, la) && std::getline(b, lb)) {
        const double x = nlohmann::json::parse(la)["loss"], y = nlohmann::json::parse(lb)["loss"];
        EXPECT_NEAR(x, y, (device().is_cpu() ? 1e-5 : 2e-3) * std::fabs(y))
            << name << " row " << rows;
        ++rows;
      }
      EXPECT_GT(rows, 0);
    }
    comm->barrier()->wait();
  }
};

TEST_P(ParallelDeviceTest, GptDataParallelWithZero1) {
  expect_equals_one_cpu_process("configs/gpt_tiny.pbtxt",
                                {"train.steps=3", "data.global_batch_size=8",
                                 "parallel.zero_stage=1", "parallel.bucket_bytes=40000"},
                                "gpt_zero1");
}

// ZeRO-2: every micro-batch reduce-scattered on the device and added into the shard there.
TEST_P(ParallelDeviceTest, GptDataParallelWithZero2AndMicroBatches) {
  expect_equals_one_cpu_process(
      "configs/gpt_tiny.pbtxt",
      {"train.steps=3", "data.global_batch_size=8", "train.micro_batches=2",
       "parallel.zero_stage=2", "parallel.bucket_bytes=40000"},
      "gpt_zero2");
}

TEST_P(ParallelDeviceTest, ClipDataParallelLossOverTheGlobalBatch) {
  expect_equals_one_cpu_process("configs/clip_tiny.pbtxt",
                                {"train.steps=3", "data.global_batch_size=8"}, "clip_dp");
}

TEST_P(ParallelDeviceTest, GptTensorParallel) {
  expect_equals_one_cpu_process("configs/gpt_tiny.pbtxt",
                                {"train.steps=3", "data.global_batch_size=8", "log.every_steps=1",
                                 "parallel.tensor_parallel=2"},
                                "gpt_tp2");
}

TESSERA_INSTANTIATE_DEVICE_TESTS(ParallelDeviceTest);

}  // namespace
}  // namespace tessera::train
