// param_bytes_peak() through freeze() of a locked tower (train.freeze = "image."): freezing
// after the parameters exist moves them into the new layout, so for the copy the old and the new
// buffer are resident together, and the peak must count that moment. The real peak is read off
// the CPU caching allocator: after release_cached() it obtains a block from the system only when
// no cached one fits, so what it holds at the end (in use + cached) is the most that was in use at
// once; the sizes here (multiples of 64 KiB, above its 1 MiB threshold) make its rounding exact.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/allocator.h"
#include "core/caching_allocator.h"
#include "models/param_store.h"

namespace tessera::models {
namespace {

// 2^20 elements: a two-block image tower (frozen below) and a text tower.
void towers(ParamStore& s) {
  s.add({"image.blocks.0.w", {512, 512}, -1, Init::normal(1.0f)});
  s.add({"image.blocks.1.w", {512, 512}, -1, Init::normal(1.0f)});
  s.add({"text.blocks.0.w", {512, 512}, -1, Init::normal(1.0f)});
  s.add({"text.blocks.1.w", {256, 512}, -1, Init::normal(1.0f)});
  s.add({"text.ln.bias", {131072}, -1, Init::uniform(1.0f), ParamGroup::kNormOrBias});
  s.finalize();
}

std::vector<bool> image_tower(const ParamStore& s) {
  std::vector<bool> frozen;
  for (const ParamInfo& info : s.infos()) frozen.push_back(info.spec.name.rfind("image.", 0) == 0);
  return frozen;
}

class FreezePeak : public ::testing::TestWithParam<bool> {};

TEST_P(FreezePeak, CountsTheOldAndNewBuffersTogether) {
  const bool bf16 = GetParam();
  ParamStore s;
  towers(s);
  if (bf16) s.set_compute_dtype(DType::bf16);
  s.init(17);
  const int64_t n = s.numel(), f32 = 4 * n, shadow = bf16 ? 2 * n : 0;
  ASSERT_EQ(n, int64_t(1) << 20);
  EXPECT_EQ(s.param_bytes_peak(), f32 + shadow);
  std::vector<std::vector<float>> before;
  for (size_t id = 0; id < s.infos().size(); ++id) {
    const Tensor p = s.param(ParamId(id));
    before.emplace_back(p.data<float>(), p.data<float>() + p.numel());
  }

  auto* cpu = dynamic_cast<CachingAllocator*>(&allocator_for(Device::cpu()));
  ASSERT_NE(cpu, nullptr);
  cpu->release_cached();
  const CachingAllocatorStats start = cpu->stats();
  s.freeze(image_tower(s));
  const CachingAllocatorStats end = cpu->stats();

  // The old shadow is dropped first; then old f32 + new f32 + new shadow are resident at once.
  EXPECT_EQ(s.param_bytes_peak(), 2 * f32 + shadow);
  // The values moved with their parameters.
  for (size_t id = 0; id < s.infos().size(); ++id) {
    const Tensor p = s.param(ParamId(id));
    EXPECT_EQ(std::memcmp(p.data<float>(), before[id].data(), p.nbytes()), 0)
        << s.info(ParamId(id)).spec.name;
  }
  EXPECT_EQ(s.trainable_numel(), n / 2);

  // The measured peak needs the caching allocator: a set-up that turned it off fails, not skips.
  ASSERT_GT(start.bytes_in_use, 0u)
      << "the CPU allocator does not cache (TESSERA_CPU_CACHE=0 in the environment?): this test "
         "compares with its measured peak; run it with the cache on";
  // Nothing but the parameters is resident in cached sizes, so the allocator's high-water mark
  // is the parameters' real one.
  EXPECT_EQ(int64_t(start.bytes_in_use), f32 + shadow);
  EXPECT_EQ(s.param_bytes_peak(), int64_t(end.bytes_in_use + end.bytes_cached));
  EXPECT_EQ(int64_t(end.bytes_in_use), f32 + shadow);  // the old buffer is gone again
}

TEST(FreezePeakBeforeUse, FreezingBeforeTheBuffersExistAddsNothing) {
  // The trainer's order (freeze, then init): one buffer only.
  ParamStore s;
  towers(s);
  s.freeze(image_tower(s));
  s.init(17);
  EXPECT_EQ(s.param_bytes_peak(), 4 * s.numel());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, FreezePeak, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Bf16" : "F32"; });

}  // namespace
}  // namespace tessera::models
