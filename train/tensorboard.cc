#include "train/tensorboard.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "proto/tensorboard.pb.h"

namespace tessera::train {
namespace {

double wall_time() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string TensorBoardWriter::file_name(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  TESSERA_CHECK(!ec, dir, ": cannot create directory (", ec.message(), ")");
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(dir, "/events.out.tfevents.", int64_t(wall_time()), ".", std::string(host));
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) : file_(file_name(dir)) {
  tb::Event e;
  e.set_wall_time(wall_time());
  e.set_file_version("brain.Event:2");
  file_.write(e.SerializeAsString());
}

void TensorBoardWriter::write_scalars(int64_t step,
                                      const std::vector<std::pair<std::string, double>>& scalars) {
  tb::Event e;
  e.set_wall_time(wall_time());
  e.set_step(step);
  for (const auto& [tag, value] : scalars) {
    tb::Summary::Value* v = e.mutable_summary()->add_value();
    v->set_tag(tag);
    v->set_simple_value(float(value));
  }
  file_.write(e.SerializeAsString());
}

}  // namespace tessera::train
