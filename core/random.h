#pragma once
// Fills tensors from Philox streams. Element i of a fill under (seed, stream) is always the same
// number, whatever the tensor's device or the number of threads: element i takes value i % 4 of
// Philox block i / 4.

#include <cstdint>

#include "core/tensor.h"

namespace tessera {

// Uniform in [low, high). f32 CPU tensors.
void fill_uniform(const Tensor& t, uint64_t seed, uint64_t stream, float low, float high);
// Normal(mean, std) by Box-Muller over pairs of uniforms. f32 CPU tensors.
void fill_normal(const Tensor& t, uint64_t seed, uint64_t stream, float mean, float std);

}  // namespace tessera
