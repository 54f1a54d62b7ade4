#pragma once
// Generation from trained models: GPT text continuation (greedy or top-k sampling) and a PNG
// grid of DiT samples with the class name under each row.

#include <cstdint>
#include <string>
#include <vector>

#include "eval/canvas.h"
#include "models/gpt.h"

namespace tessera::eval {

struct GenerateOptions {
  int max_new_tokens = 32;
  int top_k = 0;             // 0: greedy (argmax); else sample among the k most likely
  float temperature = 1.0f;  // divides the logits before top-k sampling
  uint64_t seed = 0;
  int32_t stop_token = -1;  // stop after emitting it (end-of-text); -1: never
};

// Appends up to max_new_tokens to `prompt` (ids), feeding the last `context` tokens each step
// (no KV cache: the demo models are small). Returns only the new tokens, all in
// [0, gpt.vocab_size()): the columns of a padded vocabulary (models/gpt.h) are never picked.
// The model must hold the whole vocabulary (no tensor parallelism).
std::vector<int32_t> generate(models::Gpt& gpt, const std::vector<int32_t>& prompt, int context,
                              const GenerateOptions& options);

// images (N, H, W, C) f32 in [-1, 1], rows x cols of them row-major; each cell magnified by
// `scale`, a caption line under each row. C is 1 or 3.
Canvas image_grid(const std::vector<float>& images, int64_t height, int64_t width, int64_t channels,
                  int rows, int cols, const std::vector<std::string>& row_labels, int scale);

}  // namespace tessera::eval
