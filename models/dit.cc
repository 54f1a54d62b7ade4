#include "models/dit.h"

#include "models/layers/transformer_block.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/philox.h"
#include "core/random.h"
#include "models/device_batch.h"
#include "models/transformer_options.h"
#include "ops/activation.h"
#include "ops/elementwise.h"
#include "ops/gated_residual.h"
#include "ops/patchify.h"
#include "ops/reduce.h"

namespace tessera::models {
namespace {

// alpha_bar_t = prod_{s <= t} (1 - beta_s), in double.
std::vector<double> make_alpha_bar(const config::DitConfig& c) {
  const int T = c.diffusion_steps();
  TESSERA_CHECK(T > 0, "Dit: diffusion_steps must be > 0, got ", T);
  std::vector<double> betas(T);
  if (c.beta_schedule() == config::DitConfig::COSINE) {
    // Nichol & Dhariwal: alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2), s = 0.008.
    auto f = [&](double t) { return std::pow(std::cos((t / T + 0.008) / 1.008 * M_PI / 2), 2); };
    for (int i = 0; i < T; ++i) betas[i] = std::min(1 - f(i + 1) / f(i), 0.999);
  } else {
    const double scale = 1000.0 / T, lo = scale * 1e-4, hi = scale * 0.02;
    for (int i = 0; i < T; ++i) betas[i] = T == 1 ? lo : lo + (hi - lo) * i / (T - 1);
  }
  std::vector<double> ab(T);
  double prod = 1;
  for (int i = 0; i < T; ++i) ab[i] = prod *= 1 - betas[i];
  return ab;
}

// DiT's get_2d_sincos_pos_embed: token i * g + j gets [sin(j w), cos(j w), sin(i w), cos(i w)],
// w_k = 10000^(-k / (d/4)), k < d/4. (DiT's meshgrid puts the column index first.)
Tensor sincos_2d(int64_t g, int64_t d) {
  Tensor out = Tensor::empty({g * g, d}, DType::f32);
  const int64_t q = d / 4;
  for (int64_t i = 0; i < g; ++i) {
    for (int64_t j = 0; j < g; ++j) {
      float* row = out.data<float>() + (i * g + j) * d;
      for (int64_t k = 0; k < q; ++k) {
        const double w = 1.0 / std::pow(10000.0, double(k) / double(q));
        row[k] = float(std::sin(j * w));
        row[q + k] = float(std::cos(j * w));
        row[2 * q + k] = float(std::sin(i * w));
        row[3 * q + k] = float(std::cos(i * w));
      }
    }
  }
  return out;
}

const Tensor& need(const Batch& batch, const char* name) {
  auto it = batch.find(name);
  TESSERA_CHECK(it != batch.end(), "Dit: the batch has no \"", name, "\" tensor");
  return it->second;
}

void expect_shape(const Tensor& t, const char* name, DType dtype, const Shape& shape) {
  TESSERA_CHECK(t.defined() && t.dtype() == dtype && t.shape() == shape, "Dit: batch tensor \"",
                name, "\" must be ", dtype_name(dtype), shape_str(shape), ", got ",
                t.defined() ? t.describe() : std::string("undefined"));
}

}  // namespace

Dit::Dit(const config::DitConfig& c, bool recompute, distributed::Communicator* tp, Device device)
    : config_(c),
      grid_(c.patch() > 0 ? c.image_size() / c.patch() : 0),
      tokens_(grid_ * grid_),
      patch_dim_(int64_t(c.patch()) * c.patch() * c.channels()),
      dim_(c.transformer().d_model()),
      alpha_bar_(make_alpha_bar(c)),
      store_(tp),
      // DiT: Xavier-uniform over the patch conv's weight read as a (d, p*p*C) matrix.
      patch_embed_(store_, "patch_embed", patch_dim_, dim_, true,
                   Init::uniform(std::sqrt(6.0f / float(patch_dim_ + dim_)))),
      t_embed_(store_, "t_embed", dim_),
      y_embed_(store_, "y_embed", c.n_classes() + 1, dim_, Init::normal(0.02f)) {
  TESSERA_CHECK(c.patch() > 0 && c.image_size() % c.patch() == 0, "Dit: image_size ",
                c.image_size(), " is not a multiple of patch ", c.patch());
  TESSERA_CHECK(dim_ % 4 == 0, "Dit: d_model ", dim_,
                " must be divisible by 4 (2-D sin-cos position embedding)");
  AdaLnBlockOptions o;
  o.dim = dim_;
  o.n_heads = c.transformer().n_heads();
  o.mlp_ratio = c.transformer().mlp_ratio();
  o.recompute = recompute;
  o.activation = block_activation(c.transformer());
  o.ln_eps = block_layer_norm_eps(c.transformer(), 1e-6f);
  for (int i = 0; i < c.transformer().n_layers(); ++i) {
    blocks_.push_back(std::make_unique<AdaLnBlock>(store_, absl::StrCat("blocks.", i), o));
  }
  final_ = std::make_unique<AdaLnFinal>(store_, "final", dim_, patch_dim_, o.ln_eps);
  pos_ = sincos_2d(grid_, dim_);
  store_.finalize(device);
}

const Tensor& Dit::positions(int64_t B) {
  const Device device = store_.device();
  if (pos_batch_.numel() != B * tokens_ * dim_ || !(pos_batch_.device() == device)) {
    Tensor host = Tensor::empty({B, tokens_, dim_}, DType::f32);
    for (int64_t b = 0; b < B; ++b) copy(pos_, host.slice(b, b + 1).view(pos_.shape()));
    pos_batch_ = on_device(host, device);
  }
  return pos_batch_;
}

std::vector<int> Dit::ddim_timesteps(int ddim_steps) const {
  const int T = config_.diffusion_steps();
  TESSERA_CHECK(ddim_steps >= 1 && ddim_steps <= T, "Dit: ddim_steps must be in [1, ", T, "], got ",
                ddim_steps);
  std::vector<int> ts(ddim_steps);
  for (int i = 0; i < ddim_steps; ++i) ts[i] = int(int64_t(i) * T / ddim_steps);
  return ts;
}

Dit::Draws Dit::draw(const Batch& batch) const {
  const int64_t S = config_.image_size(), C = config_.channels();
  const Tensor& images = need(batch, "images");
  TESSERA_CHECK(images.ndim() == 4, "Dit: batch tensor \"images\" must be f32(B, ", S, ", ", S,
                ", ", C, "), got ", images.describe());
  const int64_t B = images.dim(0);
  const Shape image_shape = {B, S, S, C};
  expect_shape(images, "images", DType::f32, image_shape);
  const Tensor keys = on_device(need(batch, "sample_keys"), Device::cpu());
  expect_shape(keys, "sample_keys", DType::i64, {B});
  const int null_class = config_.n_classes();
  Draws d;
  if (batch.count("labels")) {
    d.labels = to_device(batch.at("labels"), Device::cpu());  // a copy: the drop writes it
    expect_shape(d.labels, "labels", DType::i32, {B});
  } else {
    TESSERA_CHECK(null_class == 0, "Dit: the batch has no \"labels\" tensor");
    d.labels = Tensor::zeros({B}, DType::i32);
  }
  d.timesteps = Tensor::empty({B}, DType::i32);
  d.noise = Tensor::empty(image_shape, DType::f32);
  const uint32_t T = uint32_t(config_.diffusion_steps());
  for (int64_t b = 0; b < B; ++b) {
    const int64_t key = keys.data<int64_t>()[b];
    TESSERA_CHECK(key >= 0, "Dit: sample_keys must be >= 0, got ", key, " at ", b);
    int32_t& y = d.labels.data<int32_t>()[b];
    TESSERA_CHECK(y >= 0 && y <= null_class, "Dit: label ", y, " at ", b, " is outside [0, ",
                  null_class, "]");
    // Stream 2k + 1, block 0: the timestep (multiply-shift: unbiased to 2^-32) and the drop.
    // Stream 2k: the noise, element i from value i % 4 of block i / 4 (as fill_normal).
    const Philox4x32 r = philox_block(seed_, 2 * uint64_t(key) + 1, 0);
    d.timesteps.data<int32_t>()[b] = int32_t((uint64_t(r.v[0]) * T) >> 32);
    if (philox_uniform(r.v[1]) < config_.class_dropout()) y = null_class;
    fill_normal(d.noise.slice(b, b + 1), seed_, 2 * uint64_t(key), 0.0f, 1.0f);
  }
  if (batch.count("timesteps")) {
    d.timesteps = on_device(batch.at("timesteps"), Device::cpu());
    expect_shape(d.timesteps, "timesteps", DType::i32, {B});
    for (int64_t b = 0; b < B; ++b) {
      const int32_t t = d.timesteps.data<int32_t>()[b];
      TESSERA_CHECK(t >= 0 && t < int32_t(T), "Dit: timestep ", t, " at ", b, " is outside [0, ", T,
                    ")");
    }
  }
  if (batch.count("noise")) {
    d.noise = on_device(batch.at("noise"), Device::cpu());
    expect_shape(d.noise, "noise", DType::f32, image_shape);
  }
  return d;
}

Tensor Dit::forward_patches(const Tensor& xp, const Tensor& timesteps, const Tensor& labels) {
  const int64_t B = xp.dim(0);
  const Device device = xp.device();
  Tensor x = patch_embed_.forward(xp);  // (B, T, d)
  ops::add(x, positions(B), x);
  Tensor temb = t_embed_.forward(timesteps, device);  // (B, d)
  Tensor yemb = y_embed_.forward(labels);             // (B, d)
  c_ = Tensor::empty({B, dim_}, DType::f32, device);
  ops::add(temb, yemb, c_);
  sc_ = Tensor::empty({B, dim_}, DType::f32, device);  // SiLU(c), shared by every adaLN
  ops::silu_forward(c_, sc_);
  for (auto& block : blocks_) x = block->forward(x, sc_);
  return final_->forward(x, sc_);  // (B, T, p*p*C)
}

void Dit::backward_patches(const Tensor& dpred) {
  AdaLnGrads g = final_->backward(dpred);
  Tensor dx = g.dx, dsc = g.dc;  // (B, T, d), (B, d)
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) {
    AdaLnGrads gb = (*it)->backward(dx);
    dx = gb.dx;
    ops::add_inplace(dsc, gb.dc);
  }
  ops::silu_backward(dsc, c_, dsc);  // in place: dsc becomes dc
  c_ = sc_ = Tensor();
  y_embed_.backward(dsc);
  t_embed_.backward(dsc);
  patch_embed_.backward(dx, /*need_dx=*/false);  // positions are fixed: no gradient
}

LossResult Dit::run(const Batch& batch, bool backward, float loss_scale) {
  Draws d = draw(batch);  // host: timesteps, labels after the drop, noise
  const Device device = store_.device();
  const Tensor& x0 = batch.at("images");  // (B, H, W, C), host or device; draw() checked it
  const int64_t B = x0.dim(0), p = config_.patch();
  // Per-sample coefficients of x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, from the host timesteps,
  // repeated over the P columns of a patch row (the gate layout of ops::gated_residual_forward):
  // (2, B, P), rows 0 and 1.
  const int64_t P = patch_dim_;
  Tensor coef = Tensor::empty({2, B, P}, DType::f32);
  for (int64_t b = 0; b < B; ++b) {
    const double ab = alpha_bar_[d.timesteps.data<int32_t>()[b]];
    std::fill_n(coef.data<float>() + b * P, P, float(std::sqrt(ab)));
    std::fill_n(coef.data<float>() + (B + b) * P, P, float(std::sqrt(1 - ab)));
  }
  coef = on_device(coef, device);
  // The uploads of a host batch: images and the noise (the draws are made on the host); a device
  // batch uploads only the noise.
  Tensor xp = Tensor::empty({B, tokens_, P}, DType::f32, device);  // (B, T, P) x0
  Tensor ep = Tensor::empty({B, tokens_, P}, DType::f32, device);  // (B, T, P) eps
  ops::patchify(on_device(x0, device), xp, p);
  ops::patchify(on_device(d.noise, device), ep, p);
  // Noised in patch layout (patchify only permutes each sample's elements), on the device: two
  // gated residuals y = x + gate * h, the gate constant over each sample.
  Tensor xt = Tensor::zeros({B, tokens_, P}, DType::f32, device);          // (B, T, P)
  ops::gated_residual_forward(xt, coef.slice(1, 2).view({B, P}), ep, xt);  // sqrt(1 - ab) eps
  ops::gated_residual_forward(xt, coef.slice(0, 1).view({B, P}), xp, xt);  // + sqrt(ab) x0
  xp = Tensor();
  // The MSE is over all elements, so it is taken in patch layout: no unpatchify needed.
  Tensor diff = forward_patches(xt, d.timesteps, on_device(d.labels, device));  // (B, T, P)
  ops::scale(ep, -1.0f, ep);
  ops::add(diff, ep, diff);  // eps_hat - eps
  const double count = double(diff.numel());
  const double loss = ops::sum_squares(diff) / count;  // one read-back
  if (backward) {
    ops::scale(diff, float(2.0 * loss_scale / count), diff);  // d(loss) / d(eps_hat)
    backward_patches(diff);
  }
  return {loss, B};
}

LossResult Dit::forward_backward(const Batch& batch, float loss_scale) {
  return run(batch, true, loss_scale);
}

LossResult Dit::forward_loss(const Batch& batch) {
  return run(batch, false, 1.0f);
}

Tensor Dit::predict_eps(const Tensor& x_t, const Tensor& timesteps, const Tensor& labels) {
  const Device device = store_.device();
  const int64_t p = config_.patch(), B = x_t.dim(0);
  Tensor xp = Tensor::empty({B, tokens_, patch_dim_}, DType::f32, device);
  ops::patchify(on_device(x_t, device), xp, p);
  Tensor e = forward_patches(xp, on_device(timesteps, Device::cpu()), on_device(labels, device));
  Tensor out = Tensor::empty(x_t.shape(), DType::f32, device);
  ops::unpatchify(e, out, p);
  return out;
}

Tensor Dit::sample_from(const Tensor& noise, const Tensor& labels, float guidance_scale,
                        int ddim_steps, bool clip_denoised) {
  const int64_t S = config_.image_size(), C = config_.channels(), p = config_.patch();
  TESSERA_CHECK(noise.ndim() == 4, "Dit: noise must be f32(B, ", S, ", ", S, ", ", C, "), got ",
                noise.describe());
  const int64_t B = noise.dim(0);
  expect_shape(noise, "noise", DType::f32, {B, S, S, C});
  const Tensor y = on_device(labels, Device::cpu());
  expect_shape(y, "labels", DType::i32, {B});
  const std::vector<int> ts = ddim_timesteps(ddim_steps);
  const Device device = store_.device();
  // Class-conditional: rows [0, B) conditional, [B, 2B) the null class.
  const bool cfg = config_.n_classes() > 0;
  const int64_t n = cfg ? 2 * B : B;
  Tensor labels2 = Tensor::empty({n}, DType::i32);
  for (int64_t b = 0; b < n; ++b) {
    labels2.data<int32_t>()[b] = b < B ? y.data<int32_t>()[b] : config_.n_classes();
  }
  labels2 = on_device(labels2, device);
  Tensor x = Tensor::empty({B, tokens_, patch_dim_}, DType::f32, device);   // (B, T, P)
  Tensor x2 = Tensor::empty({n, tokens_, patch_dim_}, DType::f32, device);  // (n, T, P)
  ops::patchify(on_device(noise, device), x, p);
  for (int i = ddim_steps - 1; i >= 0; --i) {
    const double ab = alpha_bar_[ts[i]], ab_prev = i > 0 ? alpha_bar_[ts[i - 1]] : 1.0;
    copy(x, x2.slice(0, B));
    if (cfg) copy(x, x2.slice(B, n));
    Tensor t = Tensor::empty({n}, DType::i32);
    for (int64_t b = 0; b < n; ++b) t.data<int32_t>()[b] = ts[i];
    Tensor e2 = forward_patches(x2, t, labels2);  // (n, T, P)
    Tensor eps = e2.slice(0, B);
    if (cfg) {  // eps = eps_u + s (eps_c - eps_u) = s eps_c + (1 - s) eps_u
      Tensor eu = e2.slice(B, n);
      ops::scale(eps, guidance_scale, eps);
      ops::scale(eu, 1.0f - guidance_scale, eu);
      ops::add(eps, eu, eps);
    }
    if (clip_denoised) {
      // x0 = clamp((x - sqrt(1 - ab) eps) / sqrt(ab), -1, 1), eps = (x - sqrt(ab) x0) /
      // sqrt(1 - ab), x <- sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps (guided-diffusion's
      // ddim_sample with clip_denoised), per element in double on the host.
      Tensor xh = to_device(x, Device::cpu()), eh = to_device(eps, Device::cpu());  // (B, T, P)
      float* xv = xh.data<float>();
      const float* ev = eh.data<float>();
      const double sa = std::sqrt(ab), sb = std::sqrt(1 - ab);
      const double sa_prev = std::sqrt(ab_prev), sb_prev = std::sqrt(1 - ab_prev);
      for (int64_t k = 0; k < xh.numel(); ++k) {
        const double x0 = std::clamp((double(xv[k]) - sb * double(ev[k])) / sa, -1.0, 1.0);
        const double e = (double(xv[k]) - sa * x0) / sb;
        xv[k] = float(sa_prev * x0 + sb_prev * e);
      }
      copy(xh, x);
      continue;
    }
    // x0 = (x - sqrt(1 - ab) eps) / sqrt(ab); x <- sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps,
    // i.e. x <- a x + b eps with the coefficients below (in double).
    const double a = std::sqrt(ab_prev / ab);
    const double b = std::sqrt(1 - ab_prev) - std::sqrt(ab_prev * (1 - ab) / ab);
    ops::scale(x, float(a), x);
    ops::scale(eps, float(b), eps);
    ops::add(x, eps, x);
  }
  c_ = sc_ = Tensor();
  Tensor images = Tensor::empty({B, S, S, C}, DType::f32, device);
  ops::unpatchify(x, images, p);
  return images;
}

Tensor Dit::sample(const Tensor& labels, float guidance_scale, int ddim_steps, uint64_t seed,
                   bool clip_denoised) {
  const int64_t S = config_.image_size(), C = config_.channels(), B = labels.numel();
  Tensor noise = Tensor::empty({B, S, S, C}, DType::f32);
  for (int64_t b = 0; b < B; ++b) fill_normal(noise.slice(b, b + 1), seed, uint64_t(b), 0, 1);
  return sample_from(noise, labels, guidance_scale, ddim_steps, clip_denoised);
}

double Dit::train_flops(int64_t batch_size) const {
  // 6 N per use of a weight (forward 2, backward 4). Patch embedding, attention, MLP and the
  // final linear run once per token; the timestep MLP and the adaLN projections once per sample
  // (they see c, not the tokens), so they count per sample rather than per token. Attention
  // scores and values add 12·L·T·d per token (PaLM's appendix B), T = number of patches.
  const auto& t = config_.transformer();
  const double d = dim_, L = t.n_layers(), T = tokens_, P = patch_dim_, r = t.mlp_ratio();
  const double n_token = P * d + L * (4 * d * d + 2 * r * d * d) + d * P;
  const double n_sample = TimestepEmbedding::kFreqDim * d + d * d + L * 6 * d * d + 2 * d * d;
  return batch_size * (6 * (n_token * T + n_sample) + 12 * L * T * T * d);
}

int64_t Dit::activation_bytes(int64_t batch_size) const {
  // adaLN blocks save three more (B, T, C) tensors than a plain block (the modulated inputs and
  // the branch output the gate multiplies); outside them: patch rows (noisy input, noise,
  // prediction) and the token stream.
  const int64_t B = batch_size, T = tokens_, C = dim_;
  const auto& t = config_.transformer();
  const bool recompute = !blocks_.empty() && blocks_[0]->recomputes();
  return 4 * (block_stack_saved_floats(t.n_layers(), B, T, C, t.n_heads(), t.mlp_ratio(), recompute,
                                       /*extra=*/3) +
              3 * B * T * patch_dim_ + 4 * B * T * C);
}

}  // namespace tessera::models
