#pragma once
// Training runs at a chosen layout on part of the world (the resharding suites:
// checkpoint_reshard_test.cc, zero_resume_test.cc): a layout of `ranks` world ranks, TP `tp`
// and ZeRO stage `zero`, run on world ranks [0, ranks) while the others wait.

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "distributed/communicator.h"
#include "nlohmann/json.hpp"
#include "train/trainer.h"

namespace tessera::train::testing_support {

struct Layout {
  int ranks, tp, zero;
  std::string name() const {
    return absl::StrCat("dp", ranks / tp, "_tp", tp, zero ? absl::StrCat("_zero", zero) : "");
  }
};

// step -> loss from RUN_DIR/metrics.jsonl (training records only).
inline std::map<int64_t, double> losses(const std::string& dir) {
  std::map<int64_t, double> out;
  std::ifstream f(dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("kind")) out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

// Trains `cfg` at `layout` on world ranks [0, layout.ranks), resuming from `resume` (may be
// empty); the other ranks wait. Collective over the world.
inline void train_at(distributed::Communicator& world, config::Config cfg, const Layout& layout,
                     const std::string& dir, const std::string& resume) {
  cfg.mutable_parallel()->set_tensor_parallel(layout.tp);
  cfg.mutable_parallel()->set_zero_stage(layout.zero);
  const bool member = world.rank() < layout.ranks;
  std::unique_ptr<distributed::Communicator> group;
  if (layout.ranks < world.size()) {
    group = world.split(member ? 0 : 1, world.rank(), "group");
  }
  if (member) {
    distributed::Communicator* comm = layout.ranks == world.size() ? &world : group.get();
    Trainer t(cfg, dir, true, layout.ranks == 1 ? nullptr : comm);
    if (!resume.empty()) t.set_resume(resume);
    EXPECT_EQ(t.run(), kExitOk) << layout.name();
  }
  world.barrier()->wait();
}

}  // namespace tessera::train::testing_support
