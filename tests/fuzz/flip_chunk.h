#pragma once
// The shard harnesses' corruption step: flip one byte inside a stored chunk of one dataset,
// never in HDF5's own structures, so that what the reader meets is a checksum mismatch in the
// data rather than a broken file (HDF5's own parser is not the target).

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <span>
#include <string>

#include "tests/support/files.h"
#include "tests/support/hdf5_chunks.h"

namespace tessera::fuzz {

// The dataset (one of `names`), the chunk, the byte and the bit mask all come from `in`; nothing
// happens where the dataset is missing or has no stored chunk.
inline void flip_in_chunk(FuzzedDataProvider& in, const std::string& path,
                          std::span<const char* const> names) {
  const char* name = names[in.ConsumeIntegralInRange<size_t>(0, names.size() - 1)];
  const uint64_t chunks = testing::stored_chunk_count(path, name);
  if (chunks == 0) return;
  const auto chunk =
      testing::stored_chunk(path, name, in.ConsumeIntegralInRange<uint64_t>(0, chunks - 1));
  if (!chunk) return;
  const uint8_t mask = in.ConsumeIntegralInRange<uint8_t>(1, 255);
  testing::flip_byte(
      path, chunk->address + in.ConsumeIntegralInRange<uint64_t>(0, chunk->bytes - 1), mask);
}

}  // namespace tessera::fuzz
