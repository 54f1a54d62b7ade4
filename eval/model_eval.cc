#include "eval/model_eval.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "eval/metrics.h"

namespace tessera::eval {

nlohmann::json evaluate_vit(models::Vit& vit, const BatchFn& data, int64_t n, int64_t batch) {
  TopK acc;
  double loss = 0;
  int64_t classes = 0;
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t count = std::min(batch, n - first);
    models::Batch b = data(first, count);
    loss += vit.forward_loss(b).loss * count;                     // leaves the logits of this batch
    const std::vector<float> logits = host_floats(vit.logits());  // (count, C)
    classes = int64_t(logits.size()) / count;
    const Tensor& labels = b.at("labels");
    add_topk(logits, std::span<const int32_t>(labels.data<int32_t>(), count), classes, acc);
  }
  return {{"top1", acc.top1()},
          {"top5", acc.top5()},
          {"loss", loss / double(n)},
          {"chance_top1", classes ? 1.0 / double(classes) : 0.0},
          {"n_samples", n}};
}

nlohmann::json evaluate_gpt(models::Model& gpt, const BatchFn& data, int64_t n, int64_t batch) {
  double sum = 0;
  int64_t tokens = 0;
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t count = std::min(batch, n - first);
    const models::LossResult r = gpt.forward_loss(data(first, count));
    sum += r.loss * double(r.count);
    tokens += r.count;
  }
  TESSERA_CHECK(tokens > 0, "evaluate_gpt: no target tokens in ", n, " samples");
  const double loss = sum / double(tokens);
  return {
      {"val_loss", loss}, {"perplexity", std::exp(loss)}, {"n_samples", n}, {"n_tokens", tokens}};
}

nlohmann::json evaluate_dit(models::Dit& dit, const BatchFn& data, int64_t n, int64_t batch,
                            int buckets, int diffusion_steps) {
  TESSERA_CHECK(buckets >= 1 && buckets <= diffusion_steps, "evaluate_dit: ", buckets,
                " timestep buckets for ", diffusion_steps, " diffusion steps");
  std::vector<double> sum(buckets, 0.0);
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t count = std::min(batch, n - first);
    models::Batch b = data(first, count);
    for (int k = 0; k < buckets; ++k) {
      const int lo = k * diffusion_steps / buckets, hi = (k + 1) * diffusion_steps / buckets;
      Tensor t = Tensor::empty({count}, DType::i32);
      // Spread over [lo, hi) by sample position (a stride coprime to most widths).
      for (int64_t i = 0; i < count; ++i)
        t.data<int32_t>()[i] = int32_t(lo + ((first + i) * 7919) % (hi - lo));
      b["timesteps"] = t;
      sum[k] += dit.forward_loss(b).loss * double(count);
    }
  }
  nlohmann::json r;
  double total = 0;
  for (int k = 0; k < buckets; ++k) {
    const int lo = k * diffusion_steps / buckets, hi = (k + 1) * diffusion_steps / buckets;
    r[absl::StrCat("loss_t", lo, "_", hi - 1)] = sum[k] / double(n);
    total += sum[k] / double(n) / buckets;
  }
  r["val_loss"] = total;
  r["n_samples"] = n;
  return r;
}

}  // namespace tessera::eval
