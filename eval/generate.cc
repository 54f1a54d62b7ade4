#include "eval/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"
#include "eval/clip_eval.h"
#include "eval/font.h"

namespace tessera::eval {

std::vector<int32_t> generate(models::Gpt& gpt, const std::vector<int32_t>& prompt, int context,
                              const GenerateOptions& o) {
  TESSERA_CHECK(!prompt.empty(), "generate: the prompt has no tokens");
  for (size_t i = 0; i < prompt.size(); ++i) {
    TESSERA_CHECK(prompt[i] >= 0 && prompt[i] < gpt.vocab_size(), "generate: prompt token ", i,
                  " is ", prompt[i], ", outside the vocabulary [0, ", gpt.vocab_size(), ")");
  }
  std::vector<int32_t> seq = prompt, out;
  std::mt19937_64 rng(o.seed);
  for (int step = 0; step < o.max_new_tokens; ++step) {
    const int64_t T = std::min<int64_t>(context, int64_t(seq.size()));
    Tensor tokens = Tensor::empty({1, T}, DType::i32);
    std::copy(seq.end() - T, seq.end(), tokens.data<int32_t>());
    const std::vector<float> logits = host_floats(gpt.forward_logits(tokens));  // (1, T, Vp)
    // Rows are Vp long; only the first V columns are ids (the rest: vocabulary padding, whose
    // logits are 0 and could otherwise beat every real token).
    const int64_t stride = int64_t(logits.size()) / T, V = gpt.vocab_size();
    TESSERA_CHECK(gpt.vocab_begin() == 0 && stride == gpt.padded_vocab_size(),
                  "generate: the model's logits are a tensor-parallel slice (", stride, " of ",
                  gpt.padded_vocab_size(), " columns); generation needs the whole vocabulary");
    const float* last = logits.data() + (T - 1) * stride;
    int32_t next = 0;
    if (o.top_k <= 0) {
      next = int32_t(std::max_element(last, last + V) - last);
    } else {
      std::vector<int32_t> idx(V);
      std::iota(idx.begin(), idx.end(), 0);
      const int64_t k = std::min<int64_t>(o.top_k, V);
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                        [&](int32_t a, int32_t b) { return last[a] > last[b]; });
      std::vector<double> p(k);
      for (int64_t i = 0; i < k; ++i)
        p[i] = std::exp(double(last[idx[i]] - last[idx[0]]) / std::max(1e-6f, o.temperature));
      std::discrete_distribution<int64_t> pick(p.begin(), p.end());
      next = idx[pick(rng)];
    }
    seq.push_back(next);
    out.push_back(next);
    if (next == o.stop_token) break;
  }
  return out;
}

Canvas image_grid(const std::vector<float>& images, int64_t H, int64_t W, int64_t C, int rows,
                  int cols, const std::vector<std::string>& row_labels, int scale) {
  TESSERA_CHECK(int64_t(images.size()) == int64_t(rows) * cols * H * W * C,
                "image_grid: ", images.size(), " values are not ", rows, " x ", cols, " images of ",
                H, "x", W, "x", C);
  const int pad = 4, caption = kCellHeight + 6;
  const int cw = int(W) * scale, ch = int(H) * scale;
  Canvas c(pad + cols * (cw + pad), pad + rows * (ch + caption + pad));
  for (int r = 0; r < rows; ++r) {
    const int y0 = pad + r * (ch + caption + pad);
    for (int col = 0; col < cols; ++col) {
      const int x0 = pad + col * (cw + pad);
      const float* img = images.data() + (int64_t(r) * cols + col) * H * W * C;
      for (int64_t y = 0; y < H; ++y) {
        for (int64_t x = 0; x < W; ++x) {
          uint8_t v[3];
          for (int k = 0; k < 3; ++k) {
            const float f = img[(y * W + x) * C + (C == 1 ? 0 : k)];
            v[k] = uint8_t(std::lround(std::clamp((f + 1.0f) * 127.5f, 0.0f, 255.0f)));
          }
          c.fill_rect(x0 + int(x) * scale, y0 + int(y) * scale, x0 + int(x + 1) * scale - 1,
                      y0 + int(y + 1) * scale - 1, {v[0], v[1], v[2]});
        }
      }
    }
    if (r < int(row_labels.size())) c.text(pad, y0 + ch + 4, row_labels[r], {0, 0, 0});
  }
  return c;
}

}  // namespace tessera::eval
