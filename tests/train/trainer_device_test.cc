// The trainer on every device (train.device): a run on device() follows the CPU reference run
// step by step, for each model family, with the batch pipeline that uploads micro-batch k+1
// while k computes (micro_batches = 2 against the reference's single full batch, so on the CPU
// too the compared runs take different paths: accumulation order differs; for CLIP and SigLIP,
// GradCache's embedding pass and recomputation, train/grad_cache.h). A checkpoint written
// on device() resumes on the CPU. The CUDA variants skip here ("no CUDA device"); gpu_check runs
// them on a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "nlohmann/json.hpp"
#include "tests/support/devices.h"
#include "tests/train/train_test_support.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

using testing_support::load;

// An empty run directory of this suite's own (metrics.jsonl is appended to).
std::string run_dir(const std::string& name) {
  const std::string dir = testing_support::run_dir("trainer_device_" + name);
  std::filesystem::remove_all(dir);
  return dir;
}

// The training rows of metrics.jsonl (evaluation rows carry "kind").
std::vector<nlohmann::json> metrics_rows(const std::string& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream f(dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) {
    auto row = nlohmann::json::parse(line);
    if (!row.contains("kind")) out.push_back(row);
  }
  return out;
}

std::vector<double> losses(const std::string& dir) {
  std::vector<double> out;
  for (const auto& row : metrics_rows(dir)) out.push_back(row["loss"].get<double>());
  return out;
}

// Tolerances. CPU vs CPU: the same f32 math summed in another order (1e-5 relative). CUDA vs
// CPU: cuBLASLt and cuDNN use other kernels and orders (and tensor cores round inputs), so a
// few steps of training agree to about 1e-3 relative in the loss.
double loss_rtol(Device d) {
  return d.is_cpu() ? 1e-5 : 2e-3;
}

struct Family {
  const char* config;
  int micro_batches;  // of the run on device(); the reference takes the full batch at once
};

class TrainerDeviceTest : public testing::DeviceTest {
 protected:
  std::string device_set() const {
    return std::string("train.device=") + (device().is_cpu() ? "CPU" : "CUDA");
  }
};

TEST_P(TrainerDeviceTest, EveryFamilyFollowsTheCpuReference) {
  const std::vector<Family> families = {
      {"configs/gpt_tiny.pbtxt", 2},  {"configs/vit_tiny.pbtxt", 2},
      {"configs/clip_tiny.pbtxt", 2}, {"configs/siglip_tiny.pbtxt", 2},
      {"configs/dit_tiny.pbtxt", 2},
  };
  for (const Family& f : families) {
    SCOPED_TRACE(f.config);
    std::vector<std::string> common = {"train.steps=3", "log.every_steps=1",
                                       "data.global_batch_size=8", "schedule.warmup_steps=0"};
    std::vector<std::string> on_device = common;
    on_device.push_back(device_set());
    on_device.push_back("train.micro_batches=" + std::to_string(f.micro_batches));
    const std::string name = std::filesystem::path(f.config).stem().string();
    const std::string ref_dir = run_dir("ref_" + name), dir = run_dir(device().str() + "_" + name);
    Trainer reference(load(f.config, common), ref_dir, true);
    Trainer trained(load(f.config, on_device), dir, true);
    EXPECT_EQ(trained.device(), device());
    EXPECT_EQ(trained.model().params().params().device(), device());
    ASSERT_EQ(reference.run(), kExitOk);
    ASSERT_EQ(trained.run(), kExitOk);
    const auto want = losses(ref_dir), got = losses(dir);
    ASSERT_EQ(got.size(), 3u);
    ASSERT_EQ(want.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_NEAR(got[i], want[i], loss_rtol(device()) * std::fabs(want[i])) << "step " << i + 1;
    }
    if (device().is_cuda()) {
      // No cudaMalloc in a step after the first: the caching allocator serves every block.
      const auto rows = metrics_rows(dir);
      ASSERT_EQ(rows.size(), 3u);
      EXPECT_EQ(rows[2]["cuda_mallocs"], rows[1]["cuda_mallocs"]);
    }
    // Training moved the parameters the same way.
    const Tensor a = to_device(trained.model().params().params(), Device::cpu());
    const Tensor& b = reference.model().params().params();
    double max_diff = 0, max_abs = 0;
    for (int64_t i = 0; i < b.numel(); ++i) {
      max_diff = std::max(max_diff, double(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
      max_abs = std::max(max_abs, double(std::fabs(b.data<float>()[i])));
    }
    EXPECT_LT(max_diff, (device().is_cpu() ? 1e-6 : 1e-3) * max_abs);
  }
}

// A checkpoint saved by a run on device() resumes on the CPU: the stored values do not depend
// on where they were computed.
TEST_P(TrainerDeviceTest, CheckpointResumesAcrossDevices) {
  const std::string dir = run_dir(device().str() + "_resume");
  std::vector<std::string> sets = {"train.steps=4", "log.every_steps=1", "data.global_batch_size=8",
                                   "checkpoint.every_steps=2", "train.micro_batches=2"};
  std::vector<std::string> on_device = sets;
  on_device.push_back(device_set());
  {
    Trainer first(load("configs/gpt_tiny.pbtxt", on_device), dir, true);
    ASSERT_EQ(first.run(), kExitOk);
  }
  const auto uninterrupted = losses(dir);
  ASSERT_EQ(uninterrupted.size(), 4u);
  // Resume from step 2 on the CPU, in a second run directory.
  const std::string resumed_dir = run_dir(device().str() + "_resumed_on_cpu");
  Trainer second(load("configs/gpt_tiny.pbtxt", sets), resumed_dir, true);
  second.set_resume(dir + "/checkpoints/step_00000002");
  ASSERT_EQ(second.run(), kExitOk);
  const auto resumed = losses(resumed_dir);
  ASSERT_EQ(resumed.size(), 2u);  // steps 3 and 4
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(resumed[i], uninterrupted[2 + i], loss_rtol(device()) * std::fabs(resumed[i]))
        << "step " << i + 3;
  }
}

TESSERA_INSTANTIATE_DEVICE_TESTS(TrainerDeviceTest);

// train.device = CUDA where there is none: exit status 1 and a line naming the field.
TEST(TrainerDevice, CudaWithoutAGpuNamesTheField) {
  if (cuda_device_count() > 0) return;  // TrainerDeviceTest/cuda covers a machine with one
  TrainOptions o;
  o.config_path = testing::source_path("configs/gpt_tiny.pbtxt");
  o.overrides = {"train.device=CUDA", "train.steps=1"};
  o.run_dir = run_dir("cuda_without_gpu");
  o.quiet = true;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_train(o), kExitError);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("train.device = CUDA: rank 0: no CUDA device"), std::string::npos) << err;
}

}  // namespace
}  // namespace tessera::train
