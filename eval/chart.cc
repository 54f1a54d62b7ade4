#include "eval/chart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "eval/font.h"

namespace tessera::eval {
namespace {

constexpr Rgb kBlack{0, 0, 0}, kGrid{225, 225, 225}, kGray{90, 90, 90};
constexpr int kMarginLeft = 78, kMarginRight = 24, kMarginTop = 36, kMarginBottom = 48;
constexpr int kTicks = 6;

// Widens [lo, hi] when it is empty (no data) or a single value.
void widen(double& lo, double& hi) {
  if (!(lo <= hi)) lo = 0, hi = 1;
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
}

void axis(double lo, double hi, double& a0, double& a1, double& step) {
  step = nice_step(hi - lo, kTicks);
  a0 = std::floor(lo / step + 1e-9) * step;
  a1 = std::ceil(hi / step - 1e-9) * step;
  if (a1 <= a0) a1 = a0 + step;
}

}  // namespace

double nice_step(double span, int target_ticks) {
  const double raw = span / std::max(1, target_ticks);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  const double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nice * mag;
}

std::string tick_label(double value, double step) {
  if (std::abs(value) < step * 1e-6) value = 0;
  const double big = std::max(std::abs(value), step);
  if (big >= 1e6 || step < 1e-4) return absl::StrFormat("%.1e", value);
  const int decimals = std::max(0, int(std::ceil(-std::log10(step) - 1e-9)));
  return absl::StrFormat("%.*f", decimals, value);
}

Rgb series_color(int i) {
  static constexpr Rgb kPalette[] = {{31, 119, 180},  {214, 39, 40},   {44, 160, 44},
                                     {255, 127, 14},  {148, 103, 189}, {140, 86, 75},
                                     {227, 119, 194}, {23, 190, 207}};
  return kPalette[i % 8];
}

int ChartLayout::px(double x) const {
  return left + int(std::lround((x - x0) / (x1 - x0) * (right - left)));
}
int ChartLayout::py(double y) const {
  return bottom - int(std::lround((y - y0) / (y1 - y0) * (bottom - top)));
}

ChartLayout layout_chart(const ChartSpec& spec, const std::vector<Series>& series) {
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  for (const Series& s : series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xlo = std::min(xlo, s.x[i]);
      xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i]);
      yhi = std::max(yhi, s.y[i]);
    }
  }
  widen(xlo, xhi);
  widen(ylo, yhi);
  ChartLayout l;
  l.left = kMarginLeft;
  l.top = kMarginTop;
  l.right = spec.width - 1 - kMarginRight;
  l.bottom = spec.height - 1 - kMarginBottom;
  axis(xlo, xhi, l.x0, l.x1, l.x_step);
  axis(ylo, yhi, l.y0, l.y1, l.y_step);
  return l;
}

Canvas render_chart(const ChartSpec& spec, const std::vector<Series>& series) {
  const ChartLayout l = layout_chart(spec, series);
  Canvas c(spec.width, spec.height);
  // Grid and ticks with numbers.
  const int nx = int(std::lround((l.x1 - l.x0) / l.x_step));
  for (int i = 0; i <= nx; ++i) {
    const double v = l.x0 + i * l.x_step;
    const int x = l.px(v);
    c.line(x, l.top, x, l.bottom, kGrid);
    c.line(x, l.bottom, x, l.bottom + 4, kBlack);
    const std::string s = tick_label(v, l.x_step);
    c.text(x - text_width(s) / 2, l.bottom + 8, s, kBlack);
  }
  const int ny = int(std::lround((l.y1 - l.y0) / l.y_step));
  for (int i = 0; i <= ny; ++i) {
    const double v = l.y0 + i * l.y_step;
    const int y = l.py(v);
    c.line(l.left, y, l.right, y, kGrid);
    c.line(l.left - 4, y, l.left, y, kBlack);
    const std::string s = tick_label(v, l.y_step);
    c.text(l.left - 8 - text_width(s), y - text_height() / 2, s, kBlack);
  }
  // Frame, title, x label.
  c.line(l.left, l.top, l.right, l.top, kBlack);
  c.line(l.left, l.bottom, l.right, l.bottom, kBlack);
  c.line(l.left, l.top, l.left, l.bottom, kBlack);
  c.line(l.right, l.top, l.right, l.bottom, kBlack);
  c.text((spec.width - text_width(spec.title, 2)) / 2, 10, spec.title, kBlack, 2);
  c.text((l.left + l.right - text_width(spec.x_label)) / 2, spec.height - 18, spec.x_label, kGray);
  // Series.
  for (const Series& s : series) {
    int prev_x = 0, prev_y = 0;
    bool have_prev = false;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      const int x = l.px(s.x[i]), y = l.py(s.y[i]);
      if (have_prev) c.line(prev_x, prev_y, x, y, s.color, 2);
      if (s.markers || s.x.size() == 1) c.fill_rect(x - 2, y - 2, x + 2, y + 2, s.color);
      prev_x = x, prev_y = y, have_prev = true;
    }
  }
  // Legend: top-right inside the plot box, a short line of the colour then the name.
  int widest = 0;
  for (const Series& s : series) widest = std::max(widest, text_width(s.name));
  const int row = 14, lx1 = l.right - 8, lx0 = lx1 - widest - 34;
  const int ly0 = l.top + 8, ly1 = ly0 + 6 + row * int(series.size());
  if (!series.empty()) {
    c.fill_rect(lx0, ly0, lx1, ly1, {255, 255, 255});
    c.line(lx0, ly0, lx1, ly0, kGray);
    c.line(lx0, ly1, lx1, ly1, kGray);
    c.line(lx0, ly0, lx0, ly1, kGray);
    c.line(lx1, ly0, lx1, ly1, kGray);
    for (size_t i = 0; i < series.size(); ++i) {
      const int y = ly0 + 4 + row * int(i) + row / 2;
      c.line(lx0 + 6, y, lx0 + 24, y, series[i].color, 2);
      c.text(lx0 + 30, y - text_height() / 2, series[i].name, kBlack);
    }
  }
  return c;
}

}  // namespace tessera::eval
