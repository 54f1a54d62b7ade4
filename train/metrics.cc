#include "train/metrics.h"

#include "core/error.h"

namespace tessera::train {

MetricsWriter::MetricsWriter(const std::string& path) : path_(path), out_(path, std::ios::app) {
  TESSERA_CHECK(out_.good(), path, ": cannot open for appending");
}

void MetricsWriter::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  TESSERA_CHECK(out_.good(), path_, ": write failed (disk full?)");
}

}  // namespace tessera::train
