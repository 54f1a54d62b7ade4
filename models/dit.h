#pragma once
// DiT (Peebles & Xie, "Scalable Diffusion Models with Transformers", 2023): a class-conditional
// diffusion transformer on pixels. Channels-last images (B, H, W, C) in [-1, 1] are cut into
// p x p patches ((py, px, c) order, as a ViT patch embedding), embedded by Linear(p*p*C -> d),
// plus a FIXED 2-D sin-cos position embedding (DiT's get_2d_sincos_pos_embed; not a parameter).
// The conditioning c = TimestepEmbedding(t) + class embedding(y) (n_classes + 1 rows, the last
// the null class of classifier-free guidance) drives adaLN-Zero blocks and the final layer, which
// predicts the noise eps per patch. Only eps is predicted (DiT's learn_sigma=False).
//
// Training (DDPM's simple loss): t ~ U{0..T-1}, eps ~ N(0, I),
// x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, loss = mean over all elements of (eps_hat - eps)^2.
// Randomness is keyed, never stateful: t, eps and the label drop (probability class_dropout ->
// null class) of a sample are Philox draws keyed by (seed, sample key), so they do not depend on
// the batch composition or the number of ranks. The draws are made on the host (like the loader's
// augmentation); the noising x_t itself runs on the model's device.
//
// Batch: "images" (B, H, W, C) f32 in [-1, 1]; "labels" (B) i32 in [0, n_classes] (n_classes is
// the null class; may be absent when n_classes == 0); "sample_keys" (B) i64 >= 0, unique per
// sample occurrence. Optional overrides for tests: "timesteps" (B) i32 and "noise" (B, H, W, C)
// f32 replace the random draws (the label drop still applies).
// Every batch tensor may be on the host or on the model's device. Per step the host -> device
// copies are the noise, the labels after the drop, two (B) coefficients and the (B, 256)
// timestep frequencies (plus the images of a host batch); the keys, labels and any overrides are
// read on the host; the loss is read back once.
//
// Noise schedule: LINEAR betas as DDPM/DiT (improved-DDPM's get_named_beta_schedule: 1e-4 to 0.02
// scaled by 1000 / diffusion_steps) or COSINE (Nichol & Dhariwal, betas clipped at 0.999);
// alpha_bar precomputed in double.

#include <memory>
#include <vector>

#include "models/layers/adaln_block.h"
#include "models/layers/embedding.h"
#include "models/layers/timestep_embedding.h"
#include "models/model.h"
#include "proto/config.pb.h"

namespace tessera::models {

class Dit final : public Model {
 public:
  Dit(const config::DitConfig& config, bool recompute, distributed::Communicator* tp = nullptr,
      Device device = Device::cpu());

  ParamStore& params() override { return store_; }
  LossResult forward_backward(const Batch& batch, float loss_scale) override;
  // The same keyed draws (label drop included) as forward_backward: the training objective.
  LossResult forward_loss(const Batch& batch) override;
  double train_flops(int64_t batch_size) const override;
  int64_t activation_bytes(int64_t batch_size) const override;

  // Seed of the keyed draws (the trainer sets train.seed). Default 0.
  void set_seed(uint64_t seed) override { seed_ = seed; }
  // The draws' keys and their optional overrides are read on the host.
  std::vector<std::string> host_inputs() const override {
    return {"sample_keys", "labels", "timesteps", "noise"};
  }

  // The host-side random draws of a batch (after overrides and the label drop).
  struct Draws {
    Tensor timesteps;  // (B) i32
    Tensor labels;     // (B) i32, null class where dropped
    Tensor noise;      // (B, H, W, C) f32
  };
  Draws draw(const Batch& batch) const;

  // The model's noise prediction for noisy images x_t (B, H, W, C), timesteps (B) i32 and
  // labels (B) i32 -> eps_hat (B, H, W, C).
  Tensor predict_eps(const Tensor& x_t, const Tensor& timesteps, const Tensor& labels);

  // DDIM (eta = 0) with classifier-free guidance eps = eps_u + s (eps_c - eps_u), conditional and
  // unconditional halves batched as 2B. sample() draws the initial noise from Philox (seed,
  // stream = sample index); sample_from() starts from the given noise. Returns (B, H, W, C).
  // clip_denoised (the default, as improved-DDPM / guided-diffusion sample pixel models): each
  // step's prediction x0 = (x - sqrt(1 - ab) eps) / sqrt(ab) is clamped to the data range
  // [-1, 1] and eps recomputed from it before the step. Without it, an imperfect eps at large t
  // (where 1 / sqrt(ab) is ~150 for the LINEAR schedule) puts an x0 of magnitude ~10-100 into
  // the trajectory and the samples come out as saturated noise. That step runs on the host in
  // double (two (B, H, W, C) copies per step on a GPU).
  Tensor sample(const Tensor& labels, float guidance_scale, int ddim_steps, uint64_t seed,
                bool clip_denoised = true);
  Tensor sample_from(const Tensor& noise, const Tensor& labels, float guidance_scale,
                     int ddim_steps, bool clip_denoised = true);

  const std::vector<double>& alpha_bar() const { return alpha_bar_; }  // (diffusion_steps)
  // The DDIM timesteps, ascending: i * T / steps for i in [0, steps).
  std::vector<int> ddim_timesteps(int ddim_steps) const;

 private:
  Tensor forward_patches(const Tensor& xp, const Tensor& timesteps, const Tensor& labels);
  void backward_patches(const Tensor& dpred);
  LossResult run(const Batch& batch, bool backward, float loss_scale);
  const Tensor& positions(int64_t B);  // (B, T, d) on the model's device

  config::DitConfig config_;
  int64_t grid_, tokens_, patch_dim_, dim_;
  uint64_t seed_ = 0;
  std::vector<double> alpha_bar_;
  ParamStore store_;
  Linear patch_embed_;
  TimestepEmbedding t_embed_;
  Embedding y_embed_;
  std::vector<std::unique_ptr<AdaLnBlock>> blocks_;
  std::unique_ptr<AdaLnFinal> final_;
  Tensor pos_;        // (T, d) f32 host, the fixed 2-D sin-cos embedding
  Tensor pos_batch_;  // (B, T, d) on the device, rebuilt when B changes
  Tensor c_, sc_;     // saved conditioning before and after SiLU (B, d)
};

}  // namespace tessera::models
