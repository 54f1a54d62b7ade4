// Uploader (core/upload.h): host batches to the training device. On CUDA: values arrive intact
// through the pinned staging and the ring of device batch slots, used as the trainer does (batch
// k+1 uploaded while k is in use), with sizes and dtypes changing and the host buffers overwritten
// right after upload() returns; tensors the model reads on the host pass through. On the CPU: no
// copy at all.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

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

TEST_P(UploadTest, PipelinedBatchesArriveIntact) {
  Uploader up(device(), {"keys"});
  const DType dtypes[] = {DType::f32, DType::i32, DType::u8, DType::bf16};
  std::vector<TensorMap> hosts;
  std::vector<std::map<std::string, std::vector<uint8_t>>> want;
  for (uint32_t k = 0; k < 12; ++k) {
    // Sizes grow and shrink (buffers are reallocated or viewed), dtypes change by name.
    const int64_t n = 1 + int64_t(k * 977 % 300000);
    TensorMap b = {{"images", patterned({n}, dtypes[k % 4], k)},
                   {"labels", patterned({int64_t(3 + k % 5)}, DType::i32, 100 + k)},
                   {"keys", patterned({4}, DType::i64, 200 + k)}};
    std::map<std::string, std::vector<uint8_t>> w;
    for (const auto& [name, t] : b) w[name] = bytes_of(t);
    hosts.push_back(b);
    want.push_back(w);
  }
  Uploader::Pending next = up.upload(hosts[0]);
  for (size_t k = 0; k < hosts.size(); ++k) {
    if (device().is_cuda()) {
      // upload() copied out of the host tensors already: overwriting them changes nothing.
      for (auto& [name, t] : hosts[k])
        if (name != "keys") std::memset(t.raw_data(), 0xAB, t.nbytes());
    }
    const TensorMap batch = up.ready(std::move(next));
    if (k + 1 < hosts.size()) next = up.upload(hosts[k + 1]);  // while k is in use
    ASSERT_EQ(batch.size(), 3u);
    for (const auto& [name, t] : batch) {
      SCOPED_TRACE("batch " + std::to_string(k) + " " + name);
      EXPECT_EQ(t.device(), name == "keys" ? Device::cpu() : device());
      EXPECT_EQ(bytes_of(t), want[k][name]);
    }
    EXPECT_EQ(batch.at("keys").raw_data(), hosts[k].at("keys").raw_data());  // passed through
  }
  if (device().is_cuda()) {
    EXPECT_GT(up.staging_bytes(), 0);
    EXPECT_GT(up.bytes_uploaded(), 0);
  }
}

TEST_P(UploadTest, ViewsWithOffsets) {
  Uploader up(device());
  Tensor rows = patterned({8, 5}, DType::f32, 3);
  Tensor middle = rows.slice(2, 6);  // (4, 5) at an offset
  const TensorMap batch = up.upload_now({{"images", middle}});
  EXPECT_EQ(batch.at("images").shape(), middle.shape());
  EXPECT_EQ(bytes_of(batch.at("images")), bytes_of(middle));
  EXPECT_EQ(up.bytes_uploaded(), device().is_cpu() ? 0 : int64_t(4 * 5 * 4));
}

TEST_P(UploadTest, HostSourcesOnlyAndNoCopyOnTheCpu) {
  Uploader up(device());
  if (!device().is_cpu()) {
    // A device tensor is not a host batch: the error names the tensor.
    try {
      up.upload({{"tokens", Tensor::zeros({3}, DType::f32, device())}});
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("\"tokens\""), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("host tensor"), std::string::npos) << e.what();
    }
    // More batches ahead than the ring holds without making any ready: a clear error.
    const TensorMap b = {{"x", patterned({10}, DType::f32, 1)}};
    Uploader::Pending p1 = up.upload(b), p2 = up.upload(b);
    EXPECT_THROW(up.upload(b), Error);
    return;
  }
  Tensor host = patterned({100}, DType::f32, 1);
  EXPECT_EQ(up.upload_now({{"x", host}}).at("x").raw_data(), host.raw_data());
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
