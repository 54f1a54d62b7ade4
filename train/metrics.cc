#include "train/metrics.h"

#include <filesystem>

#include "core/error.h"
#include "train/tensorboard.h"

namespace tessera::train {

MetricsWriter::MetricsWriter(const std::string& path, bool tensorboard)
    : path_(path), out_(path, std::ios::app) {
  TESSERA_CHECK(out_.good(), path, ": cannot open for appending");
  if (tensorboard) {
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (dir.empty()) dir = ".";
    tb_ = std::make_unique<TensorBoardWriter>((dir / "tb").string());
  }
}

MetricsWriter::~MetricsWriter() = default;

std::string MetricsWriter::tensorboard_path() const {
  return tb_ ? tb_->path() : std::string();
}

void MetricsWriter::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  TESSERA_CHECK(out_.good(), path_, ": write failed (disk full?)");
  if (!tb_ || !record.is_object() || !record.contains("step")) return;
  // Records without a kind are training steps; others ("eval", "checkpoint", ...) by kind.
  const std::string kind = record.contains("kind") && record["kind"].is_string()
                               ? record["kind"].get<std::string>()
                               : std::string("train");
  const std::string prefix = kind + "/";
  std::vector<std::pair<std::string, double>> scalars;
  for (const auto& [key, value] : record.items()) {
    if (key == "step" || !value.is_number()) continue;
    scalars.emplace_back(prefix + key, value.get<double>());
  }
  tb_->write_scalars(record["step"].get<int64_t>(), scalars);
}

}  // namespace tessera::train
