// Uploader (core/upload.h): host batches to the training device. On CUDA: values arrive intact
// through the pinned staging ring, also with more uploads in flight than it has slots and when
// the host buffer is overwritten right after upload() returns; on the CPU: no copy at all.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/random.h"
#include "core/upload.h"
#include "tests/support/devices.h"

namespace tessera {
namespace {

class UploadTest : public testing::DeviceTest {};

// Bytes of t, read back to the host.
std::vector<uint8_t> bytes_of(const Tensor& t) {
  Tensor host = t.device().is_cpu() ? t : to_device(t, Device::cpu());
  const auto* p = static_cast<const uint8_t*>(host.raw_data());
  return std::vector<uint8_t>(p, p + host.nbytes());
}

// A host tensor with position- and seed-keyed bytes (any dtype: raw bytes are compared).
Tensor patterned(const Shape& shape, DType dtype, uint32_t seed) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* p = static_cast<uint8_t*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = uint8_t((i * 131u + seed * 7919u) >> 3);
  return t;
}

TEST_P(UploadTest, ValuesArriveAndTheHostBufferIsFreeAtOnce) {
  Uploader up(device());
  std::vector<Tensor> uploaded;
  std::vector<std::vector<uint8_t>> want;
  // More uploads than staging slots (16), of several sizes and dtypes, before any read-back.
  const DType dtypes[] = {DType::f32, DType::i32, DType::u8, DType::bf16};
  for (uint32_t k = 0; k < 40; ++k) {
    const int64_t n = 1 + int64_t(k * 977 % 300000);
    Tensor host = patterned({n}, dtypes[k % 4], k);
    want.push_back(bytes_of(host));
    uploaded.push_back(up.upload(host));
    EXPECT_EQ(uploaded.back().device(), device());
    if (device().is_cuda()) {
      // The uploader copied out of host already: overwriting it changes nothing uploaded.
      std::memset(host.raw_data(), 0xAB, host.nbytes());
    }
  }
  for (size_t k = 0; k < uploaded.size(); ++k) {
    EXPECT_EQ(bytes_of(uploaded[k]), want[k]) << "upload " << k;
  }
  if (device().is_cuda()) {
    EXPECT_GT(up.staging_bytes(), 0);
  }
}

TEST_P(UploadTest, ViewsWithOffsetsAndWholeBatches) {
  Uploader up(device());
  Tensor rows = patterned({8, 5}, DType::f32, 3);
  Tensor middle = rows.slice(2, 6);  // (4, 5) at an offset
  std::map<std::string, Tensor> batch = {{"images", middle},
                                         {"labels", patterned({4}, DType::i32, 9)}};
  auto on_device = up.upload(batch);
  ASSERT_EQ(on_device.size(), 2u);
  for (const auto& [name, t] : batch) {
    EXPECT_EQ(on_device.at(name).shape(), t.shape()) << name;
    EXPECT_EQ(bytes_of(on_device.at(name)), bytes_of(t)) << name;
  }
  EXPECT_EQ(up.bytes_uploaded(), device().is_cpu() ? 0 : int64_t(4 * 5 * 4 + 4 * 4));
}

TEST_P(UploadTest, HostSourcesOnlyAndNoCopyOnTheCpu) {
  if (!device().is_cpu()) {
    // A device tensor is not a host batch: the error names the tensor.
    Uploader up(device());
    Tensor on_device = Tensor::zeros({3}, DType::f32, device());
    std::map<std::string, Tensor> batch = {{"tokens", on_device}};
    try {
      up.upload(batch);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("\"tokens\""), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("host tensor"), std::string::npos) << e.what();
    }
    return;
  }
  Uploader up(device());
  Tensor host = patterned({100}, DType::f32, 1);
  EXPECT_EQ(up.upload(host).raw_data(), host.raw_data());
  EXPECT_EQ(up.staging_bytes(), 0);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(UploadTest);

// Without a usable GPU (no backend, or no device), asking for one is a clear error.
TEST(Upload, CudaWithoutADeviceIsAClearError) {
  if (cuda_device_count() > 0) return;  // the device tests above cover a machine with one
  try {
    Uploader up(Device::cuda(0));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera
