#pragma once
// CPU launchers for ops/embedding.h: raw pointers; n ids, a (v, c) table. Both throw
// tessera::Error for an id outside [0, v).

#include <cstdint>

namespace tessera::ops::cpu {

void embedding_forward(const int32_t* ids, const float* table, float* out, int64_t n, int64_t v,
                       int64_t c);
// dtable accumulated.
void embedding_backward(const float* dout, const int32_t* ids, float* dtable, int64_t n, int64_t v,
                        int64_t c);

}  // namespace tessera::ops::cpu
