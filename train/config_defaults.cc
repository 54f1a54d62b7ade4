#include "train/config_defaults.h"

namespace tessera::train {

// Defaults for every field outside `model` (the model's own defaults depend on its kind and are
// filled by fill_model_defaults). A config file is merged on top: whatever it writes wins.
const char* const kConfigDefaults = R"pb(
  train { steps: 1000 seed: 1234 micro_batches: 1 max_bad_steps: 5 ema_warmup: true }
  optim { lr: 3e-4 beta1: 0.9 beta2: 0.95 eps: 1e-8 weight_decay: 0.1 grad_clip: 1.0 }
  schedule { kind: COSINE warmup_steps: 100 min_lr_ratio: 0.1 }
  data {
    source: "synthetic"
    global_batch_size: 8
    loader_threads: 2
    prefetch_batches: 4
    mix_prob: 1
  }
  parallel {
    tensor_parallel: 1
    zero_stage: 0
    bucket_bytes: 26214400
    collective_timeout_s: 600
    reduce_tied_grad_early: false
    vocab_slice_bytes: 26214400
  }
  checkpoint { every_steps: 0 keep_last: 3 }
  log { every_steps: 10 }
  eval { every_steps: 0 batches: 8 }
  distill { alpha: 0.5 temperature: 1 }
)pb";

namespace {

void fill_transformer(config::TransformerConfig* t) {
  if (t->mlp_ratio() == 0) t->set_mlp_ratio(4);
}

void fill_image(config::VitConfig* v) {
  if (v->channels() == 0) v->set_channels(3);
  fill_transformer(v->mutable_transformer());
}

}  // namespace

void fill_model_defaults(config::ModelConfig* m) {
  switch (m->kind_case()) {
    case config::ModelConfig::kGpt:
      fill_transformer(m->mutable_gpt()->mutable_transformer());
      break;
    case config::ModelConfig::kVit:
      fill_image(m->mutable_vit());
      break;
    case config::ModelConfig::kClip: {
      auto* c = m->mutable_clip();
      fill_image(c->mutable_image());
      fill_transformer(c->mutable_text()->mutable_transformer());
      if (c->init_logit_scale() == 0) c->set_init_logit_scale(2.6592600f);  // log(1 / 0.07)
      if (c->max_logit_scale() == 0) c->set_max_logit_scale(4.6051702f);    // log(100)
      if (c->loss() == config::ClipConfig::SIGLIP && c->init_logit_bias() == 0) {
        c->set_init_logit_bias(-10.0f);  // SigLIP's init
      }
      break;
    }
    case config::ModelConfig::kDit: {
      auto* d = m->mutable_dit();
      if (d->channels() == 0) d->set_channels(3);
      if (d->diffusion_steps() == 0) d->set_diffusion_steps(1000);
      fill_transformer(d->mutable_transformer());
      break;
    }
    case config::ModelConfig::KIND_NOT_SET:
      break;
  }
}

}  // namespace tessera::train
