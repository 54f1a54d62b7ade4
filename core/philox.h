#pragma once
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. Value i of a stream is a pure function of (key, counter), so CPU and
// CUDA produce the same numbers and any element can be generated without the ones before it
// (init, augmentation keyed by sample index, diffusion noise). Header-only, host and device.

#include <cstdint>

#if defined(__CUDACC__)
#define TESSERA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define TESSERA_HOST_DEVICE inline
#endif

namespace tessera {

struct Philox4x32 {
  uint32_t v[4];
};

TESSERA_HOST_DEVICE Philox4x32 philox4x32_10(Philox4x32 ctr, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(kM0) * ctr.v[0];
    uint64_t p1 = uint64_t(kM1) * ctr.v[2];
    uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    ctr = Philox4x32{{hi1 ^ ctr.v[1] ^ key0, lo1, hi0 ^ ctr.v[3] ^ key1, lo0}};
    key0 += kW0;
    key1 += kW1;
  }
  return ctr;
}

// Block `block` (4 values) of stream `stream` under `seed`.
TESSERA_HOST_DEVICE Philox4x32 philox_block(uint64_t seed, uint64_t stream, uint64_t block) {
  Philox4x32 ctr{
      {uint32_t(block), uint32_t(block >> 32), uint32_t(stream), uint32_t(stream >> 32)}};
  return philox4x32_10(ctr, uint32_t(seed), uint32_t(seed >> 32));
}

// Uniform in [0, 1) with 24 random bits.
TESSERA_HOST_DEVICE float philox_uniform(uint32_t bits) {
  return float(bits >> 8) * (1.0f / 16777216.0f);
}
// Uniform in (0, 1]: safe for log() in Box-Muller.
TESSERA_HOST_DEVICE float philox_uniform_open0(uint32_t bits) {
  return float((bits >> 8) + 1) * (1.0f / 16777216.0f);
}

}  // namespace tessera
