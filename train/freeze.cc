#include "train/freeze.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/error.h"
#include "train/param_patterns.h"

namespace tessera::train {

int freeze_parameters(const config::Config& config, models::ParamStore& store) {
  const std::string& patterns = config.train().freeze();
  if (split_list(patterns).empty()) return 0;
  auto hit = match_params(store, patterns, "train.freeze");
  TESSERA_CHECK(hit.ok(), hit.status().message());
  const int n = static_cast<int>(std::count(hit->begin(), hit->end(), true));
  TESSERA_CHECK(n < static_cast<int>(store.infos().size()), "train.freeze = \"", patterns,
                "\" freezes every parameter of the model: nothing would train");
  store.freeze(*hit);
  return n;
}

std::string describe_frozen(const models::ParamStore& store) {
  if (!store.any_frozen()) return "";
  int frozen = 0;
  for (size_t id = 0; id < store.infos().size(); ++id) frozen += store.frozen(int(id));
  std::vector<std::string> locked;
  if (store.all_frozen("image.", "image.proj.")) locked.push_back("the image tower");
  if (store.find("head.weight") >= 0 && store.all_frozen("", "head.")) {
    locked.push_back("the trunk below the head");
  }
  const int64_t off = store.numel() - store.trainable_numel();
  return absl::StrCat(
      "frozen (train.freeze): ", frozen, " of ", store.infos().size(), " parameter tensors, ", off,
      " of ", store.numel(), " elements (", absl::StrFormat("%.1f", 100.0 * off / store.numel()),
      "%): no gradients, optimizer state or all-reduce for them",
      locked.empty()
          ? ""
          : absl::StrCat("; forward only, no activations kept: ", absl::StrJoin(locked, ", ")));
}

namespace {

// "PREFIXblocks.I.rest" -> (PREFIX, I); false when the name has no block segment.
bool block_of(const std::string& name, std::string* tower, int* index) {
  size_t pos = 0;
  while ((pos = name.find("blocks.", pos)) != std::string::npos) {
    if (pos == 0 || name[pos - 1] == '.') {
      const size_t digits = pos + 7;
      size_t end = digits;
      while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
      if (end > digits && end < name.size() && name[end] == '.') {
        *tower = name.substr(0, pos);
        *index = std::atoi(name.c_str() + digits);
        return true;
      }
    }
    ++pos;
  }
  return false;
}

}  // namespace

std::vector<double> layer_lr_scales(const config::OptimConfig& optim,
                                    const models::ParamStore& store) {
  const auto& infos = store.infos();
  std::vector<double> scales(infos.size(), 1.0);
  const double d = optim.layer_decay();
  if (d <= 0 || d == 1) return scales;
  struct Tower {
    int blocks = 0;
    size_t first_id = SIZE_MAX;  // registration index of its first block parameter
  };
  std::map<std::string, Tower> towers;
  for (size_t id = 0; id < infos.size(); ++id) {
    std::string tower;
    int index = 0;
    if (!block_of(infos[id].spec.name, &tower, &index)) continue;
    Tower& t = towers[tower];
    t.blocks = std::max(t.blocks, index + 1);
    t.first_id = std::min(t.first_id, id);
  }
  for (size_t id = 0; id < infos.size(); ++id) {
    const std::string& name = infos[id].spec.name;
    std::string tower;
    int index = 0;
    if (block_of(name, &tower, &index)) {
      scales[id] = std::pow(d, towers[tower].blocks - index);
      continue;
    }
    // Not in a block: in the tower whose prefix is the longest one of the name; registered
    // before its blocks = an embedding (deepest decay), after them = norm, head, projection.
    const std::string* best = nullptr;
    for (const auto& [prefix, t] : towers) {
      if (name.compare(0, prefix.size(), prefix) == 0 && (!best || prefix.size() > best->size())) {
        best = &prefix;
      }
    }
    if (best && id < towers[*best].first_id) scales[id] = std::pow(d, towers[*best].blocks + 1);
  }
  return scales;
}

std::vector<LrRange> lr_ranges(const std::vector<double>& scales, const models::ParamStore& store) {
  std::vector<std::pair<int64_t, size_t>> by_offset;  // trainable parameters in flat order
  for (size_t id = 0; id < store.infos().size(); ++id) {
    if (!store.frozen(int(id))) by_offset.push_back({store.infos()[id].offset, id});
  }
  std::sort(by_offset.begin(), by_offset.end());
  std::vector<LrRange> out;
  for (const auto& [offset, id] : by_offset) {
    const int64_t end = offset + store.infos()[id].numel;
    if (!out.empty() && out.back().scale == scales[id] && out.back().end == offset) {
      out.back().end = end;
    } else {
      out.push_back({offset, end, scales[id]});
    }
  }
  return out;
}

}  // namespace tessera::train
