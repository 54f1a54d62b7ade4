// tessera plot: charts from a metrics file with known curves, decoded with the project's PNG
// decoder (libpng) and checked pixel by pixel where the data must appear.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "data_pipeline/image_decode.h"
#include "eval/chart.h"
#include "eval/font.h"
#include "eval/plot.h"
#include "nlohmann/json.hpp"

namespace tessera::eval {
namespace {

std::string temp_dir(const std::string& name) {
  const auto d = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

data::RgbImage decode(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  // The PNG signature, then a well-formed file libpng decodes.
  EXPECT_GE(bytes.size(), 8u);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), "\x89PNG\r\n\x1a\n");
  auto img = data::decode_png(bytes, path);
  EXPECT_TRUE(img.ok()) << img.status();
  return img.ok() ? *img : data::RgbImage{};
}

bool is(const data::RgbImage& img, int x, int y, Rgb c) {
  const uint8_t* p = img.at(y, x);
  return p[0] == c.r && p[1] == c.g && p[2] == c.b;
}

// Train loss falls linearly 4 -> 1 over steps 0..200; eval at 100 and 200.
double train_loss(int step) {
  return 4.0 - 3.0 * step / 200.0;
}

TEST(Plot, CurvesLieWhereTheDataSay) {
  const std::string run = temp_dir("plot_run");
  {
    std::ofstream m(run + "/metrics.jsonl");
    for (int s = 0; s <= 200; s += 10) {
      m << nlohmann::json{{"step", s}, {"loss", train_loss(s)}, {"lr", 1e-3 * s / 200}}.dump()
        << "\n";
      if (s == 100 || s == 200) {
        m << nlohmann::json{{"step", s},
                            {"kind", "eval"},
                            {"loss", train_loss(s) + 0.5},
                            {"zero_shot_top1", s / 400.0},
                            {"batches", 2}}
                 .dump()
          << "\n";
      }
    }
    m << nlohmann::json{{"step", 200}, {"kind", "checkpoint"}, {"ckpt_write_ms", 99.0}}.dump()
      << "\n";             // not a curve
    m << "{\"step\": 21";  // a record still being written: ignored
  }
  auto files = plot_run(run, run + "/plots");
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 3u);  // loss, lr, eval

  auto curves = read_run_curves(run + "/metrics.jsonl");
  ASSERT_TRUE(curves.ok());
  ASSERT_EQ(curves->loss.size(), 2u);
  ChartSpec spec;
  spec.title = "loss";
  const ChartLayout l = layout_chart(spec, curves->loss);
  // The axes span the data with tick multiples: steps 0..200, loss 1..4.5.
  EXPECT_LE(l.x0, 0);
  EXPECT_GE(l.x1, 200);
  EXPECT_LE(l.y0, 1);
  EXPECT_GE(l.y1, 4);
  EXPECT_LT(l.y1 - l.y0, 8);  // not a range so wide the curve is flat

  const data::RgbImage img = decode(run + "/plots/loss.png");
  ASSERT_EQ(img.width, spec.width);
  ASSERT_EQ(img.height, spec.height);
  const Rgb blue = series_color(0), red = series_color(1);
  // Each train point lies on the blue polyline (where the legend does not cover it), and 25
  // pixels above or below it the column is background or grid, not the curve.
  int checked = 0;
  for (int s = 0; s <= 200; s += 10) {
    if (s == 100 || s == 200) continue;  // under an eval marker
    const int x = l.px(s), y = l.py(train_loss(s));
    if (y < l.top + 60 && x > l.right - 140) continue;  // legend box
    EXPECT_TRUE(is(img, x, y, blue)) << "step " << s << " at (" << x << ", " << y << ")";
    EXPECT_FALSE(is(img, x, y - 25, blue));
    EXPECT_FALSE(is(img, x, y + 25, blue));
    ++checked;
  }
  EXPECT_GE(checked, 12);
  // Eval markers (red squares) at steps 100 and 200.
  for (int s : {100, 200}) {
    EXPECT_TRUE(is(img, l.px(s), l.py(train_loss(s) + 0.5), red)) << "eval at step " << s;
  }
  // The axis frame is black along the plot box (but where the curve crosses it).
  int frame = 0;
  for (int y = l.top; y <= l.bottom; ++y) frame += is(img, l.left, y, {0, 0, 0});
  EXPECT_GT(frame, (l.bottom - l.top) * 9 / 10);
  // Tick labels: dark text pixels left of the y axis and under the x axis.
  int text_left = 0, text_below = 0;
  for (int y = l.top; y <= l.bottom; ++y)
    for (int x = 0; x < l.left - 6; ++x) text_left += is(img, x, y, {0, 0, 0});
  for (int y = l.bottom + 6; y < l.bottom + 20; ++y)
    for (int x = l.left - 10; x <= l.right; ++x) text_below += is(img, x, y, {0, 0, 0});
  EXPECT_GT(text_left, 50);
  EXPECT_GT(text_below, 50);

  // eval.png: one series, zero_shot_top1 (batches is not a metric).
  ASSERT_EQ(curves->eval.size(), 1u);
  EXPECT_EQ(curves->eval[0].name, "zero_shot_top1");
  EXPECT_EQ(curves->eval[0].y, (std::vector<double>{0.25, 0.5}));
}

TEST(Plot, BadMetricsLineIsNamed) {
  const std::string run = temp_dir("plot_bad");
  {
    std::ofstream m(run + "/metrics.jsonl");
    m << "{\"step\": 1, \"loss\": 2}\nnot json\n{\"step\": 2, \"loss\": 1}\n";
  }
  auto files = plot_run(run, run + "/plots");
  ASSERT_FALSE(files.ok());
  EXPECT_NE(files.status().message().find("metrics.jsonl:2"), std::string::npos) << files.status();
  auto missing = plot_run(run + "/nope", run + "/plots");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope/metrics.jsonl"), std::string::npos);
}

TEST(Chart, NiceTicksAndLabels) {
  EXPECT_DOUBLE_EQ(nice_step(100, 5), 20);
  EXPECT_DOUBLE_EQ(nice_step(3.5, 6), 1);
  EXPECT_DOUBLE_EQ(nice_step(0.001, 5), 0.0002);
  EXPECT_EQ(tick_label(40, 20), "40");
  EXPECT_EQ(tick_label(1.5, 0.5), "1.5");
  EXPECT_EQ(tick_label(0.0006, 0.0002), "0.0006");
  EXPECT_EQ(tick_label(3e-5, 1e-5), "3.0e-05");
  EXPECT_EQ(tick_label(1e-17, 0.5), "0.0");
}

TEST(Font, GlyphsDrawTheirBitmaps) {
  // '1': a vertical stroke in the middle column with a serif at the bottom.
  Canvas c(20, 10);
  c.text(1, 1, "1", {0, 0, 0});
  for (int r = 0; r < 7; ++r) EXPECT_EQ(c.at(1 + 2, 1 + r), (Rgb{0, 0, 0})) << r;
  EXPECT_EQ(c.at(1 + 1, 1 + 6), (Rgb{0, 0, 0}));
  EXPECT_EQ(c.at(1 + 0, 1 + 0), (Rgb{255, 255, 255}));
  EXPECT_EQ(text_width("ab"), 11);
  // Every printable glyph but space has ink; unknown bytes draw as '?'.
  for (char ch = 33; ch < 127; ++ch) {
    int ink = 0;
    for (int r = 0; r < 7; ++r) ink += glyph_row(ch, r) != 0;
    EXPECT_GT(ink, 0) << ch;
  }
  for (int r = 0; r < 7; ++r) EXPECT_EQ(glyph_row('\x01', r), glyph_row('?', r));
}

}  // namespace
}  // namespace tessera::eval
