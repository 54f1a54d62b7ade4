#pragma once
// Device-parameterised tests: one test body runs on every device. The CUDA variant is always
// instantiated and reports "no CUDA device" as a skip where none is present; it is never
// counted as passed.
//
//   class LayerNormTest : public tessera::testing::DeviceTest {};
//   TEST_P(LayerNormTest, MatchesTorch) { Device d = device(); ... }
//   TESSERA_INSTANTIATE_DEVICE_TESTS(LayerNormTest);

#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/tensor.h"

namespace tessera::testing {

class DeviceTest : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (GetParam().is_cuda()) {
      if (!cuda_compiled()) GTEST_SKIP() << "no CUDA device (built without CUDA)";
      if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    }
  }
  Device device() const { return GetParam(); }
};

inline std::string device_param_name(const ::testing::TestParamInfo<Device>& info) {
  return info.param.is_cpu() ? "cpu" : "cuda";
}

}  // namespace tessera::testing

#define TESSERA_INSTANTIATE_DEVICE_TESTS(Suite)                                                \
  INSTANTIATE_TEST_SUITE_P(                                                                    \
      Devices, Suite, ::testing::Values(::tessera::Device::cpu(), ::tessera::Device::cuda(0)), \
      ::tessera::testing::device_param_name)
