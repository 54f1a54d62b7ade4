#include "eval/plot.h"

#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace tessera::eval {

absl::StatusOr<RunCurves> read_run_curves(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open (no metrics yet?)"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  const bool unfinished_last = !lines.empty() && f.eof() && !lines.back().empty();
  Series train{"train loss", {}, {}, series_color(0)};
  Series eval_loss{"eval loss", {}, {}, series_color(1), true};
  Series lr{"lr", {}, {}, series_color(0)};
  std::map<std::string, Series> eval_metrics;  // sorted by name: stable colours
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    nlohmann::json r = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    if (r.is_discarded() || !r.is_object() || !r.contains("step") || !r["step"].is_number()) {
      if (i + 1 == lines.size() && unfinished_last) break;  // being written
      return absl::DataLossError(
          absl::StrCat(path, ":", i + 1, ": not a metrics record (a JSON object with a step)"));
    }
    const double step = r["step"].get<double>();
    const std::string kind = r.contains("kind") && r["kind"].is_string()
                                 ? r["kind"].get<std::string>()
                                 : std::string("train");
    if (kind != "train" && kind != "eval") continue;  // e.g. the checkpointer's records
    const bool is_eval = kind == "eval";
    auto add = [&](Series& s, const char* key) {
      if (r.contains(key) && r[key].is_number()) {
        s.x.push_back(step);
        s.y.push_back(r[key].get<double>());
      }
    };
    if (!is_eval) {
      add(train, "loss");
      add(lr, "lr");
      continue;
    }
    add(eval_loss, "loss");
    for (const auto& [key, v] : r.items()) {
      if (key == "step" || key == "loss" || key == "batches" || !v.is_number()) continue;
      Series& s = eval_metrics[key];
      s.name = key;
      s.markers = true;
      s.x.push_back(step);
      s.y.push_back(v.get<double>());
    }
  }
  RunCurves c;
  if (!train.x.empty()) c.loss.push_back(train);
  if (!eval_loss.x.empty()) c.loss.push_back(eval_loss);
  if (!lr.x.empty()) c.lr.push_back(lr);
  int i = 0;
  for (auto& [name, s] : eval_metrics) {
    s.color = series_color(i++);
    c.eval.push_back(s);
  }
  return c;
}

absl::StatusOr<std::vector<std::string>> plot_run(const std::string& run_dir,
                                                  const std::string& out_dir) {
  auto curves = read_run_curves(run_dir + "/metrics.jsonl");
  if (!curves.ok()) return curves.status();
  if (curves->loss.empty() && curves->eval.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(run_dir, "/metrics.jsonl: no records with a loss to plot"));
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(out_dir, ": ", ec.message()));
  std::vector<std::string> written;
  auto chart = [&](const std::vector<Series>& s, const std::string& title,
                   const std::string& file) -> absl::Status {
    if (s.empty()) return absl::OkStatus();
    ChartSpec spec;
    spec.title = title;
    const std::string path = (std::filesystem::path(out_dir) / file).string();
    if (auto st = write_png(path, render_chart(spec, s)); !st.ok()) return st;
    written.push_back(path);
    return absl::OkStatus();
  };
  if (auto s = chart(curves->loss, "loss", "loss.png"); !s.ok()) return s;
  if (auto s = chart(curves->lr, "learning rate", "lr.png"); !s.ok()) return s;
  if (auto s = chart(curves->eval, "evaluation metrics", "eval.png"); !s.ok()) return s;
  return written;
}

}  // namespace tessera::eval
