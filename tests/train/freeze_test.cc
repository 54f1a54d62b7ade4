// train.freeze and optim.layer_decay (train/freeze.h), one process:
//   - frozen parameters are bitwise unchanged after steps, have no optimizer state (bytes shrink
//     by the frozen share) and no adam_m/adam_v in checkpoints; a partly frozen stack too;
//   - the trainable parameters equal a reference run without freezing in which the image tower
//     is put back to its initial values after every step (a constant tower), bitwise;
//   - a locked tower computes no gradient: the profiler counts 6 fewer matmul backward calls
//     (5 linears of the block and patch embedding + image.proj), 3 fewer LayerNorm backwards;
//   - layer_decay: the first AdamW step moves each parameter by lr * layer_decay^k * g/(|g|+eps).
#include "train/freeze.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <set>

#include "core/timer.h"
#include "models/factory.h"
#include "tests/train/init_from_support.h"
#include "train/data_source.h"
#include "train/optimizer.h"

namespace tessera::train {
namespace {

using namespace testing_support;  // small_clip, small_vit, train_source, stored, run_dir

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}

// A model of `cfg` (frozen as train.freeze says), initialised from train.seed.
std::unique_ptr<models::Model> build(const config::Config& cfg) {
  auto m = models::make_model(cfg.model());
  freeze_parameters(cfg, m->params());
  m->params().init(cfg.train().seed());
  return m;
}

std::vector<float> values(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

// Trains `cfg` through the Trainer and checks every frozen tensor of the final checkpoint
// against the initial values, and that exactly the trainable ones have optimizer state.
void expect_frozen_unchanged(config::Config cfg, const std::string& name,
                             const std::function<bool(const std::string&)>& is_frozen) {
  const auto ckpt = train_source(cfg, run_dir(name), 3);
  auto initial = build(cfg);
  int frozen = 0, moved = 0;
  std::set<std::string> with_state;
  for (const auto& t : ckpt.metadata.tensors()) {
    if (t.role() == "adam_m") with_state.insert(t.name());
  }
  for (size_t id = 0; id < initial->params().infos().size(); ++id) {
    const std::string& n = initial->params().infos()[id].spec.name;
    const std::vector<float> now = stored(ckpt, n), then = values(initial->params().param(id));
    const bool same = std::memcmp(now.data(), then.data(), now.size() * sizeof(float)) == 0;
    if (is_frozen(n)) {
      ++frozen;
      EXPECT_TRUE(same) << n << " is frozen but changed";
      EXPECT_FALSE(with_state.count(n)) << n << " is frozen but has optimizer state";
    } else {
      moved += !same;
      EXPECT_TRUE(with_state.count(n)) << n << " trains but has no optimizer state";
    }
  }
  EXPECT_GT(frozen, 0);
  EXPECT_GT(moved, 0) << "nothing trained";
}

TEST(Freeze, LockedClipImageTowerStaysBitwiseAndHasNoState) {
  expect_frozen_unchanged(small_clip({"train.freeze=image.*"}), "freeze_clip",
                          [](const std::string& n) { return starts_with(n, "image."); });
}

TEST(Freeze, PartlyFrozenVitStackStaysBitwise) {
  // Block 0 and the embeddings frozen, block 1 and the head train: backward passes through the
  // frozen block's Linear layers (dx only) into the frozen embeddings.
  expect_frozen_unchanged(
      small_vit({"model.vit.transformer.n_layers=2",
                 "train.freeze=blocks.0.*, patch_embed.*, cls_token.*, pos_emb.*"}),
      "freeze_vit", [](const std::string& n) {
        return starts_with(n, "blocks.0.") || starts_with(n, "patch_embed.") ||
               starts_with(n, "cls_token.") || starts_with(n, "pos_emb.");
      });
}

TEST(Freeze, UnfreezingLaterStartsANewRunFromTheCheckpoint) {
  const config::Config locked = small_clip({"train.freeze=image.*"});
  const auto ckpt = train_source(locked, run_dir("freeze_then_unfreeze"), 2);
  // Resuming with another train.freeze is refused, naming the tensor and the way out.
  config::Config unlocked = small_clip();
  unlocked.mutable_train()->set_steps(3);
  {
    Trainer t(unlocked, run_dir("freeze_then_unfreeze"), true);
    t.set_resume("auto");
    try {
      t.run();
      FAIL() << "resumed a frozen run's checkpoint with the tower unfrozen";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("no adam_m tensor image."), std::string::npos) << m;
      EXPECT_NE(m.find("init.checkpoint"), std::string::npos) << m;
    }
  }
  // A new run from it (init.*) trains the tower too: it starts from the locked run's values.
  config::Config next = small_clip({"optim.lr=0", "optim.weight_decay=0"});
  next.mutable_init()->set_checkpoint(ckpt.dir);
  const auto out = train_source(next, run_dir("unfrozen_next"), 1);
  for (const auto& t : out.metadata.tensors()) {
    if (t.role() != "param") continue;
    const std::vector<float> a = stored(out, t.name()), b = stored(ckpt, t.name());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << t.name();
  }
  int with_state = 0;
  for (const auto& t : out.metadata.tensors()) with_state += t.role() == "adam_m";
  EXPECT_EQ(with_state, int(build(next)->params().infos().size()));
}

TEST(Freeze, OptimizerStateShrinksByTheFrozenShare) {
  const config::Config cfg = small_clip({"train.freeze=image.*"});
  auto m = build(cfg);
  const models::ParamStore& p = m->params();
  int64_t frozen = 0;
  for (size_t id = 0; id < p.infos().size(); ++id) {
    if (starts_with(p.infos()[id].spec.name, "image.")) {
      EXPECT_TRUE(p.frozen(int(id)));
      frozen += p.infos()[id].numel;
    } else {
      EXPECT_FALSE(p.frozen(int(id)));
    }
  }
  EXPECT_EQ(p.trainable_numel(), p.numel() - frozen);
  EXPECT_EQ(p.grads().numel(), p.trainable_numel());
  auto opt = make_optimizer(m->params(), cfg, distributed::ParallelLayout::local());
  EXPECT_EQ(opt->state_bytes(), 9 * p.trainable_numel());  // m, v f32 + decay mask u8
  EXPECT_EQ(opt->m().numel(), p.trainable_numel());
  // And a locked tower of 3 blocks keeps fewer activations (one block's at a time).
  auto deep =
      build(small_clip({"model.clip.image.transformer.n_layers=3", "train.freeze=image.*"}));
  auto unfrozen = build(small_clip({"model.clip.image.transformer.n_layers=3"}));
  EXPECT_LT(deep->activation_bytes(8), unfrozen->activation_bytes(8));
}

// Steps of `m` on the synthetic batches of `cfg` through AdamW; after each step `after` runs.
void steps(
    models::Model& m, const config::Config& cfg, int n,
    const std::function<void()>& after = [] {}) {
  auto data = make_data_source(cfg);
  auto opt = make_optimizer(m.params(), cfg, distributed::ParallelLayout::local());
  const int64_t B = cfg.data().global_batch_size();
  for (int s = 0; s < n; ++s) {
    m.params().zero_grads();
    m.forward_backward(data->batch(s * B, B), 1.0f);
    ASSERT_TRUE(opt->step(1e-3).applied);
    after();
  }
}

TEST(Freeze, TrainableParametersEqualARunWithAConstantTower) {
  // No clipping: the global norm would include the image gradients in the reference only.
  const config::Config frozen_cfg = small_clip({"train.freeze=image.*", "optim.grad_clip=0"});
  const config::Config plain_cfg = small_clip({"optim.grad_clip=0"});
  auto frozen = build(frozen_cfg);
  auto plain = build(plain_cfg);
  const models::ParamStore& pp = plain->params();
  std::vector<std::pair<models::ParamId, std::vector<float>>> image0;
  for (size_t id = 0; id < pp.infos().size(); ++id) {
    if (starts_with(pp.infos()[id].spec.name, "image.")) {
      image0.push_back({int(id), values(pp.param(id))});
    }
  }
  steps(*frozen, frozen_cfg, 3);
  steps(*plain, plain_cfg, 3, [&] {
    for (const auto& [id, v] : image0) {
      std::memcpy(pp.param(id).data<float>(), v.data(), v.size() * sizeof(float));
    }
  });
  const models::ParamStore& pf = frozen->params();
  int compared = 0;
  for (size_t id = 0; id < pf.infos().size(); ++id) {
    const std::string& n = pf.infos()[id].spec.name;
    const models::ParamId j = pp.find(n);
    const std::vector<float> a = values(pf.param(id)), b = values(pp.param(j));
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << n;
    ++compared;
  }
  EXPECT_EQ(compared, int(pp.infos().size()));
}

int64_t profiled_calls(const std::string& family) {
  for (const auto& e : Profiler::entries()) {
    if (e.family == family) return e.calls;
  }
  return 0;
}

TEST(Freeze, ALockedTowerComputesNoGradients) {
  const config::Config frozen_cfg = small_clip({"train.freeze=image.*"});
  const config::Config plain_cfg = small_clip();
  auto count = [](const config::Config& cfg) {
    auto m = build(cfg);
    const models::Batch batch = make_data_source(cfg)->batch(0, 8);
    m->forward_backward(batch, 1.0f);  // warm (lazy buffers)
    Profiler::enable(true);
    Profiler::reset();
    m->forward_backward(batch, 1.0f);
    Profiler::enable(false);
    return std::make_pair(profiled_calls("matmul"), profiled_calls("layernorm"));
  };
  const auto f = count(frozen_cfg), p = count(plain_cfg);
  EXPECT_EQ(f.first, p.first - 6) << "matmul calls";
  EXPECT_EQ(f.second, p.second - 3) << "layernorm calls";
}

TEST(Freeze, ErrorsNameThePattern) {
  auto m = models::make_model(small_clip().model());
  try {
    freeze_parameters(small_clip({"train.freeze=image.*, imgae.*"}), m->params());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.freeze: pattern \"imgae.*\" matches no parameter"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(freeze_parameters(small_clip({"train.freeze=*"}), m->params()), Error);
}

TEST(LayerDecay, ScalesByDepth) {
  const config::Config cfg =
      small_vit({"model.vit.transformer.n_layers=2", "optim.layer_decay=0.5"});
  auto m = build(cfg);
  const auto scales = layer_lr_scales(cfg.optim(), m->params());
  auto scale = [&](const std::string& n) { return scales.at(m->params().find(n)); };
  EXPECT_EQ(scale("patch_embed.proj.weight"), 0.125);
  EXPECT_EQ(scale("cls_token.weight"), 0.125);
  EXPECT_EQ(scale("pos_emb.weight"), 0.125);
  EXPECT_EQ(scale("blocks.0.attn.qkv.weight"), 0.25);
  EXPECT_EQ(scale("blocks.1.mlp.fc.bias"), 0.5);
  EXPECT_EQ(scale("ln_f.weight"), 1.0);
  EXPECT_EQ(scale("head.weight"), 1.0);
  // CLIP: per tower; the projections and the logit scale at the full rate.
  const config::Config clip = small_clip({"optim.layer_decay=0.5"});
  auto c = build(clip);
  const auto cs = layer_lr_scales(clip.optim(), c->params());
  EXPECT_EQ(cs.at(c->params().find("image.blocks.0.ln1.weight")), 0.5);
  EXPECT_EQ(cs.at(c->params().find("text.tok_emb.weight")), 0.25);
  EXPECT_EQ(cs.at(c->params().find("image.proj.weight")), 1.0);
  EXPECT_EQ(cs.at(c->params().find("logit_scale")), 1.0);
}

TEST(LayerDecay, FirstAdamStepMovesEachParameterAtItsRate) {
  // Adam's first step is lr * g / (|g| + eps) per element (bias-corrected m = g, v = g^2); no
  // weight decay, no clipping.
  const config::Config cfg = small_vit({"model.vit.transformer.n_layers=2", "optim.layer_decay=0.5",
                                        "optim.weight_decay=0", "optim.grad_clip=0"});
  auto m = build(cfg);
  const std::vector<float> before = values(m->params().params());
  const double lr = 1e-3, eps = cfg.optim().eps();
  auto data = make_data_source(cfg);
  m->params().zero_grads();
  m->forward_backward(data->batch(0, 8), 1.0f);
  const std::vector<float> g = values(m->params().grads());
  auto opt = make_optimizer(m->params(), cfg, distributed::ParallelLayout::local());
  ASSERT_TRUE(opt->step(lr).applied);
  const auto scales = layer_lr_scales(cfg.optim(), m->params());
  const float* after = m->params().params().data<float>();
  for (size_t id = 0; id < scales.size(); ++id) {
    const auto& info = m->params().infos()[id];
    for (int64_t k = 0; k < info.numel; ++k) {
      const int64_t i = info.offset + k;
      const double want = -float(lr * scales[id]) * g[i] / (std::fabs(g[i]) + eps);
      // The difference of two floats near before[i]: a few of its ulps.
      const double tol = 3e-7 * std::fabs(before[i]) + 1e-5 * std::fabs(want);
      ASSERT_NEAR(after[i] - before[i], want, tol) << info.spec.name << "[" << k << "]";
    }
  }
}

}  // namespace
}  // namespace tessera::train
