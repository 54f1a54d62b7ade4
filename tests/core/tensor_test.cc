#include <gtest/gtest.h>

#include <cstdint>

#include "core/caching_allocator.h"
#include "core/random.h"
#include "core/tensor.h"
#include "tests/support/devices.h"

namespace tessera {
namespace {

TEST(Tensor, CpuAllocationsAreCacheLineAligned) {
  for (int n : {1, 3, 17, 1000}) {
    Tensor t = Tensor::empty({n}, DType::f32);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u) << n;
  }
}

// Large CPU blocks are cached: a training step that allocates the same sizes every step takes
// no new memory from the system after the first (no page faults of fresh pages).
TEST(Tensor, LargeCpuBlocksAreReusedNotReallocated) {
  auto& alloc = static_cast<CachingAllocator&>(allocator_for(Device::cpu()));
  { Tensor warm = Tensor::empty({1 << 20}, DType::f32); }
  const int64_t before = alloc.stats().source_allocs;
  void* first = nullptr;
  for (int i = 0; i < 3; ++i) {
    Tensor t = Tensor::empty({1 << 20}, DType::f32);  // 4 MiB
    if (i == 0) first = t.raw_data();
    EXPECT_EQ(t.raw_data(), first);
  }
  EXPECT_EQ(alloc.stats().source_allocs, before);
  // Small tensors bypass the cache.
  Tensor small = Tensor::empty({10}, DType::f32);
  EXPECT_EQ(alloc.stats().source_allocs, before);
}

TEST(Tensor, ViewsShareTheBufferWithoutCopying) {
  Tensor t = Tensor::zeros({4, 3}, DType::f32);
  Tensor rows = t.slice(1, 3);
  EXPECT_EQ(rows.shape(), Shape({2, 3}));
  rows.data<float>()[0] = 7.0f;
  EXPECT_EQ(t.data<float>()[3], 7.0f);
  Tensor flat = t.view({12});
  EXPECT_EQ(flat.data<float>()[3], 7.0f);
  Tensor piece = t.flat_view(5, {2, 2});
  piece.data<float>()[0] = 9.0f;
  EXPECT_EQ(t.data<float>()[5], 9.0f);
  EXPECT_EQ(piece.buffer(), t.buffer());
}

TEST(Tensor, BadViewsAndAccessNameTheTensor) {
  Tensor t = Tensor::zeros({4, 3}, DType::f32);
  EXPECT_THROW(
      {
        try {
          t.view({5, 3});
        } catch (const Error& e) {
          EXPECT_STREQ(e.what(), "Tensor::view: cannot view f32(4, 3) cpu as (5, 3)");
          throw;
        }
      },
      Error);
  EXPECT_THROW(t.slice(2, 5), Error);
  EXPECT_THROW(t.flat_view(10, {3}), Error);
  EXPECT_THROW(t.data<int32_t>(), Error);
  EXPECT_THROW(t.dim(2), Error);
  EXPECT_EQ(t.dim(-1), 3);
  EXPECT_THROW(Tensor().raw_data(), Error);
}

TEST(Tensor, DtypeSizes) {
  EXPECT_EQ(Tensor::empty({5}, DType::bf16).nbytes(), 10u);
  EXPECT_EQ(Tensor::empty({5}, DType::i64).nbytes(), 40u);
  EXPECT_EQ(Tensor::empty({5}, DType::u8).nbytes(), 5u);
}

class TensorDeviceTest : public testing::DeviceTest {};

TEST_P(TensorDeviceTest, RoundTripThroughDeviceKeepsValues) {
  Tensor host = Tensor::empty({1000}, DType::f32);
  fill_uniform(host, 1, 2, -1, 1);
  Tensor dev = to_device(host, device());
  EXPECT_EQ(dev.device(), device());
  Tensor back = to_device(dev, Device::cpu());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(back.data<float>()[i], host.data<float>()[i]);
  zero_(dev);
  copy(dev, back);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(back.data<float>()[i], 0.0f);
}

TESSERA_INSTANTIATE_DEVICE_TESTS(TensorDeviceTest);

}  // namespace
}  // namespace tessera

#if TESSERA_WITH_CUDA

namespace tessera {
namespace {

// The caching allocator reuses freed blocks: after a warm-up round, a round of the same sizes
// makes no new cudaMalloc (what keeps a training step free of cudaMalloc). CUDA only: the CPU
// allocator has no cache to test.
TEST(CachingAllocator, SecondRoundOfTheSameSizesMakesNoDeviceMalloc) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  auto& alloc = static_cast<CachingAllocator&>(allocator_for(Device::cuda(0)));
  auto round = [&] {
    std::vector<Tensor> live;
    for (int64_t n : {1, 100, 1000, 1 << 20, 3 << 20, 7}) {
      live.push_back(Tensor::empty({n}, DType::f32, Device::cuda(0)));
    }
  };
  round();
  const int64_t mallocs = alloc.stats().source_allocs;
  round();
  round();
  EXPECT_EQ(alloc.stats().source_allocs, mallocs);
  EXPECT_EQ(alloc.stats().bytes_in_use, 0u);
  EXPECT_EQ(alloc.round_size(1), 512u);
  EXPECT_EQ(alloc.round_size(3 << 20), 4u << 20);
}

}  // namespace
}  // namespace tessera
#endif
