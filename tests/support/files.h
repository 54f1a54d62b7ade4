#pragma once
// Corrupting a file on purpose: the tests that a flipped byte is caught (HDF5 and tessera's
// Fletcher32 checksums, PNG CRCs) flip it with this.

#include <cstdint>
#include <fstream>
#include <ios>
#include <string>

#include "core/error.h"

namespace tessera::testing {

// XORs the byte at `offset` of `path` with `mask`; the same call again restores it.
inline void flip_byte(const std::string& path, uint64_t offset, uint8_t mask) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  TESSERA_CHECK(f.is_open(), "flip_byte: cannot open ", path);
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.read(&c, 1);
  TESSERA_CHECK(f.good(), "flip_byte: ", path, " has no byte at offset ", offset);
  c = char(c ^ mask);
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
  TESSERA_CHECK(f.good(), "flip_byte: cannot write ", path, " at offset ", offset);
}

}  // namespace tessera::testing
