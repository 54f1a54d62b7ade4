// init.* (train/init_from.h): a model starts from a checkpoint of ANOTHER model by a mapping of
// global names. Mapped parameters equal the source's stored tensors bitwise, fresh ones equal
// their random init bitwise, and every problem of a mapping is listed in one error.
#include "train/init_from.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "models/factory.h"
#include "tests/train/init_from_support.h"

namespace tessera::train {
namespace {

using namespace testing_support;  // small_clip, small_vit, train_source, stored, run_dir

// A shard's elements equal `want` bitwise (one process: the whole parameter).
void expect_bitwise(const Tensor& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.numel(), int64_t(want.size())) << what;
  EXPECT_EQ(0, std::memcmp(got.raw_data(), want.data(), want.size() * sizeof(float))) << what;
}

// The model `cfg` describes with its random init (what a fresh start holds before init.*).
std::unique_ptr<models::Model> fresh_model(const config::Config& cfg) {
  auto m = models::make_model(cfg.model());
  m->params().init(cfg.train().seed());
  return m;
}

TEST(InitFrom, ClipImageTowerIntoVitWithNewHead) {
  const auto src = train_source(small_clip(), run_dir("init_src_clip"));
  config::Config cfg = small_vit({"train.seed=7"});
  cfg.mutable_init()->set_checkpoint(src.dir);
  cfg.mutable_init()->set_rename("image.->");
  cfg.mutable_init()->set_fresh("head.*");
  auto model = fresh_model(cfg);
  auto reference = fresh_model(cfg);
  ASSERT_TRUE(init_from_checkpoint(cfg, model->params(), false));
  const models::ParamStore& p = model->params();
  int loaded = 0;
  for (size_t i = 0; i < p.infos().size(); ++i) {
    const std::string& name = p.infos()[i].spec.name;
    if (name.rfind("head.", 0) == 0) {
      // Fresh: the random init, untouched.
      EXPECT_EQ(0, std::memcmp(p.param(i).raw_data(), reference->params().param(i).raw_data(),
                               p.param(i).nbytes()))
          << name;
    } else {
      expect_bitwise(p.param(i), stored(src, "image." + name), name);
      ++loaded;
    }
  }
  EXPECT_EQ(loaded, int(p.infos().size()) - 2);  // all but head.weight, head.bias
  // The loaded values are the source's trained ones, not this model's own init.
  EXPECT_NE(0, std::memcmp(p.params().raw_data(), reference->params().params().raw_data(),
                           p.params().nbytes()));
}

TEST(InitFrom, VitTrunkIntoClipImageTowerThroughTheTrainer) {
  const auto src = train_source(small_vit(), run_dir("init_src_vit"));
  // lr 0: the one step leaves every parameter as init made it, and the run's final checkpoint
  // shows what the trainer loaded.
  config::Config cfg = small_clip({"optim.lr=0", "optim.weight_decay=0"});
  cfg.mutable_init()->set_checkpoint(src.dir);
  cfg.mutable_init()->set_rename("->image.");
  cfg.mutable_init()->set_fresh("image.proj.*, text.*, logit_scale");
  const auto out = train_source(cfg, run_dir("init_dst_clip"), 1);
  auto reference = fresh_model(cfg);
  for (const auto& info : reference->params().infos()) {
    const std::string& name = info.spec.name;
    const bool fresh =
        name.rfind("text.", 0) == 0 || name.rfind("image.proj", 0) == 0 || name == "logit_scale";
    if (fresh) continue;
    const std::vector<float> got = stored(out, name), want = stored(src, name.substr(6));
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float))) << name;
  }
  // And a fresh tensor is the config's random init.
  const models::ParamId t = reference->params().find("text.tok_emb.weight");
  ASSERT_GE(t, 0);
  const std::vector<float> got = stored(out, "text.tok_emb.weight");
  EXPECT_EQ(0, std::memcmp(got.data(), reference->params().param(t).raw_data(),
                           got.size() * sizeof(float)));
}

// With train.ema_decay the average starts from the loaded weights, not from the random init
// they replaced: at lr 0 the parameters never move, so after a step the EMA equals them (to the
// rounding of d * x + (1 - d) * x).
TEST(InitFrom, EmaStartsFromTheLoadedWeights) {
  const auto src = train_source(small_vit(), run_dir("init_src_vit_ema"));
  config::Config cfg =
      small_vit({"optim.lr=0", "optim.weight_decay=0", "train.ema_decay=0.9", "train.seed=11"});
  cfg.mutable_init()->set_checkpoint(src.dir);
  const auto out = train_source(cfg, run_dir("init_dst_vit_ema"), 1);
  auto reference = fresh_model(cfg);
  for (const auto& info : reference->params().infos()) {
    const std::string& name = info.spec.name;
    const std::vector<float> ema = stored(out, name, "ema"), want = stored(src, name);
    ASSERT_EQ(ema.size(), want.size()) << name;
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(ema[i], want[i], 1e-6f * (1 + std::abs(want[i]))) << name << " element " << i;
  }
}

TEST(InitFrom, EveryProblemOfAMappingInOneError) {
  const auto src = train_source(small_clip(), run_dir("init_src_clip_err"));
  // A ViT of another width (shape mismatches everywhere) would bury the rest: take the same
  // trunk but a 10-class head that the config forgets to mark fresh, a fresh pattern that matches
  // nothing, and a rename rule nothing uses.
  config::Config cfg = small_vit();
  cfg.mutable_init()->set_checkpoint(src.dir);
  cfg.mutable_init()->set_rename("image.->, nothing.->nowhere.");
  cfg.mutable_init()->set_fresh("heads.*");
  auto model = fresh_model(cfg);
  try {
    init_from_checkpoint(cfg, model->params(), false);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(src.dir), std::string::npos) << m;
    EXPECT_NE(m.find("4 problems"), std::string::npos) << m;
    EXPECT_NE(m.find("head.weight <- image.head.weight: no such tensor"), std::string::npos) << m;
    EXPECT_NE(m.find("head.bias <- image.head.bias: no such tensor"), std::string::npos) << m;
    EXPECT_NE(m.find("init.fresh: pattern \"heads.*\" matches no parameter"), std::string::npos)
        << m;
    EXPECT_NE(m.find("\"nothing.->nowhere.\" applies to no parameter"), std::string::npos) << m;
  }
  // A shape mismatch names both shapes; a malformed rule is named.
  config::Config wide = small_vit({"model.vit.transformer.d_model=64"});
  wide.mutable_init()->set_checkpoint(src.dir);
  wide.mutable_init()->set_rename("image.=>");
  auto wide_model = fresh_model(wide);
  try {
    init_from_checkpoint(wide, wide_model->params(), false);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("init.rename: rule \"image.=>\" is not SOURCE_PREFIX->MODEL_PREFIX"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("ln_f.weight: no such tensor"), std::string::npos) << m;
  }
  wide.mutable_init()->set_rename("image.->");
  wide.mutable_init()->set_fresh("head.*");
  try {
    init_from_checkpoint(wide, wide_model->params(), false);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("ln_f.weight <- image.ln_f.weight: the checkpoint's shape (128), the "
                     "model's (64)"),
              std::string::npos)
        << m;
  }
  // No checkpoint there: named.
  config::Config missing = small_vit();
  missing.mutable_init()->set_checkpoint(run_dir("no_such_run"));
  EXPECT_THROW(init_from_checkpoint(missing, model->params(), false), Error);
}

}  // namespace
}  // namespace tessera::train
