#pragma once
// Line charts for people: axes with numbered ticks at "nice" values (1, 2, 5 x 10^k), a title,
// an x label, one coloured polyline per series (markers at the points when asked) and a legend.
// The layout is a pure function of the data and the size, so a test can compute where a data
// point must appear in the PNG.

#include <string>
#include <vector>

#include "eval/canvas.h"

namespace tessera::eval {

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length; non-finite y values are skipped
  Rgb color;
  bool markers = false;  // a 5x5 square at each point (for sparse series such as eval records)
};

struct ChartSpec {
  std::string title;
  std::string x_label = "step";
  int width = 800, height = 480;
};

// Where the data land: the plot box in pixels and the axis ranges (tick multiples) it spans.
struct ChartLayout {
  int left = 0, top = 0, right = 0, bottom = 0;  // plot box, inclusive pixel coordinates
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;         // axis ranges
  double x_step = 1, y_step = 1;                 // tick spacing
  int px(double x) const;
  int py(double y) const;
};

ChartLayout layout_chart(const ChartSpec& spec, const std::vector<Series>& series);
Canvas render_chart(const ChartSpec& spec, const std::vector<Series>& series);

// A tick step of about span / target_ticks rounded to 1, 2 or 5 x 10^k.
double nice_step(double span, int target_ticks);
// The tick label: as few decimals as the step needs, exponent form for tiny or huge values.
std::string tick_label(double value, double step);

// A palette of distinguishable colours for series i.
Rgb series_color(int i);

}  // namespace tessera::eval
