// Every model reports every parameter's gradient as final during backward (ParamStore::grad_done),
// so the data-parallel all-reduce can start buckets while backward still runs. A parameter that
// never reports would hold back every bucket after it until the end of backward.
#include <gtest/gtest.h>

#include "models/factory.h"
#include "train/config.h"
#include "train/synthetic_data.h"

namespace tessera::train {
namespace {

class GradProgressTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GradProgressTest, TheFinalPrefixGrowsToTheWholeBufferDuringBackward) {
  const std::string model_text = GetParam();
  auto cfg = parse_config(model_text + " data { global_batch_size: 4 }", "progress");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  auto model = models::make_model(cfg->model());
  model->params().init(1);
  std::vector<int64_t> prefixes;
  model->params().set_grad_ready_hook([&](int64_t n) { prefixes.push_back(n); });
  model->params().zero_grads();
  SyntheticData data(*cfg);
  model->forward_backward(data.batch(0, 4), 1.0f);
  ASSERT_FALSE(prefixes.empty());
  EXPECT_EQ(prefixes.back(), model->params().numel());
  // Growth in several steps: the first bucket can start long before the end.
  EXPECT_GT(prefixes.size(), 4u);
  EXPECT_LT(prefixes.front(), model->params().numel() / 2);
}

INSTANTIATE_TEST_SUITE_P(
    Models, GradProgressTest,
    ::testing::Values(
        "model { gpt { vocab_size: 29 context: 8 transformer { d_model: 16 n_layers: 2 n_heads: "
        "2 } } }",
        "model { vit { image_size: 8 patch: 4 n_classes: 5 transformer { d_model: 16 n_layers: 2 "
        "n_heads: 2 } } }",
        "model { clip { image { image_size: 8 patch: 4 transformer { d_model: 16 n_layers: 2 "
        "n_heads: 2 } } text { vocab_size: 23 context: 6 transformer { d_model: 16 n_layers: 2 "
        "n_heads: 2 } } embed_dim: 8 loss: SIGLIP } }",
        "model { dit { image_size: 8 patch: 4 n_classes: 5 transformer { d_model: 16 n_layers: 2 "
        "n_heads: 2 } } }"),
    [](const auto& info) {
      return std::string(info.index == 0   ? "gpt"
                         : info.index == 1 ? "vit"
                         : info.index == 2 ? "clip"
                                           : "dit");
    });

}  // namespace
}  // namespace tessera::train
