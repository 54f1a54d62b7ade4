#pragma once
// CPU launcher for ops/patchify.h: images (b, h, w, c) <-> patches (b, h/p * w/p, p*p*c).

#include <cstdint>

namespace tessera::ops::cpu {

// to_patches: images -> patches (patchify); else patches -> images (unpatchify). The const
// side is read, the other written.
void patchify(const float* images, const float* patches, int64_t b, int64_t h, int64_t w, int64_t c,
              int64_t p, bool to_patches);

}  // namespace tessera::ops::cpu
