#include "train/init_from.h"

#include <cstdio>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "train/param_patterns.h"

namespace tessera::train {
namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  return absl::StrCat("(", absl::StrJoin(s, ", "), ")");
}

// Checkpoints store scalars as (1) (checkpoint/slices.h); compare as stored.
std::vector<int64_t> stored_shape(const Shape& s) {
  return s.empty() ? std::vector<int64_t>{1} : std::vector<int64_t>(s.begin(), s.end());
}

// "a, b, c" or "a, b, ... (N in all)" for a summary line.
std::string some(const std::vector<std::string>& names, size_t show = 4) {
  if (names.size() <= show) return absl::StrJoin(names, ", ");
  return absl::StrCat(absl::StrJoin(names.begin(), names.begin() + show, ", "), ", ... (",
                      names.size(), " in all)");
}

}  // namespace

InitPlan plan_init(const config::InitConfig& init, const models::ParamStore& store) {
  TESSERA_CHECK(!init.checkpoint().empty(), "init.checkpoint is not set");
  auto ckpt = checkpoint::open_checkpoint(init.checkpoint());
  TESSERA_CHECK(ckpt.ok(), "init.checkpoint: ", ckpt.status().message());
  InitPlan plan;
  plan.checkpoint_dir = ckpt->dir;
  std::map<std::string, std::vector<int64_t>> stored;  // param tensors by name
  for (const auto& t : ckpt->metadata.tensors()) {
    if (t.role() == "param") stored[t.name()] = {t.shape().begin(), t.shape().end()};
  }

  std::vector<std::string> problems;
  std::vector<PrefixRule> rules;
  if (auto r = parse_prefix_rules(init.rename(), "init.rename"); r.ok()) {
    rules = *r;
  } else {
    problems.emplace_back(r.status().message());
  }
  // Patterns of init.fresh: each must match something (match_params names the first that
  // does not; check them one by one to list all).
  std::vector<bool> fresh(store.infos().size(), false);
  for (const std::string& p : split_list(init.fresh())) {
    auto hit = match_params(store, p, "init.fresh");
    if (!hit.ok()) {
      problems.emplace_back(hit.status().message());
      continue;
    }
    for (size_t i = 0; i < fresh.size(); ++i) fresh[i] = fresh[i] || (*hit)[i];
  }

  std::vector<bool> rule_used(rules.size(), false);
  std::set<std::string> loaded_names;
  plan.sources.assign(store.infos().size(), "");
  for (size_t i = 0; i < store.infos().size(); ++i) {
    const models::ParamSpec& spec = store.infos()[i].spec;
    int rule = -1;
    const std::string src = source_name(rules, spec.name, &rule);
    if (fresh[i]) {
      ++plan.fresh;
      continue;
    }
    if (rule >= 0) rule_used[rule] = true;
    const std::string from = src == spec.name ? "" : absl::StrCat(" <- ", src);
    auto it = stored.find(src);
    if (it == stored.end()) {
      problems.push_back(absl::StrCat(spec.name, from, ": no such tensor in the checkpoint"));
      continue;
    }
    if (it->second != stored_shape(spec.shape)) {
      problems.push_back(absl::StrCat(spec.name, from, ": the checkpoint's shape ",
                                      shape_text(it->second), ", the model's ",
                                      shape_text(stored_shape(spec.shape))));
      continue;
    }
    plan.sources[i] = src;
    loaded_names.insert(src);
    ++plan.loaded;
  }
  for (size_t r = 0; r < rules.size(); ++r) {
    if (!rule_used[r]) {
      problems.push_back(absl::StrCat("init.rename rule \"", rules[r].source, "->", rules[r].model,
                                      "\" applies to no parameter that loads"));
    }
  }
  if (!problems.empty()) {
    throw_error(absl::StrCat(
        "init.checkpoint ", plan.checkpoint_dir, " (a ", ckpt->metadata.model_kind(),
        " run) does not initialise this model: ", problems.size(), " problem",
        problems.size() == 1 ? "" : "s", ":\n  ", absl::StrJoin(problems, "\n  "),
        "\n(init.rename maps name prefixes, \"SOURCE->MODEL\"; init.fresh lists parameters that "
        "keep their random init)"));
  }
  for (const auto& [name, shape] : stored) {
    if (!loaded_names.count(name)) plan.unused.push_back(name);
  }
  return plan;
}

bool init_from_checkpoint(const config::Config& config, models::ParamStore& params, bool report) {
  const config::InitConfig& init = config.init();
  if (init.checkpoint().empty()) {
    TESSERA_CHECK(init.rename().empty() && init.fresh().empty(),
                  "init.rename and init.fresh need init.checkpoint");
    return false;
  }
  const InitPlan plan = plan_init(init, params);
  auto ckpt = checkpoint::open_checkpoint(plan.checkpoint_dir);
  TESSERA_CHECK(ckpt.ok(), "init.checkpoint: ", ckpt.status().message());
  absl::Status s = checkpoint::load_parameters_from(*ckpt, params, plan.sources);
  TESSERA_CHECK(s.ok(), "init.checkpoint: ", s.message());
  if (report) {
    std::vector<std::string> fresh;
    for (size_t i = 0; i < plan.sources.size(); ++i) {
      if (plan.sources[i].empty()) fresh.push_back(params.infos()[i].spec.name);
    }
    std::printf(
        "init: %lld parameters from %s (step %lld, %s)%s%s%s%s\n", (long long)plan.loaded,
        plan.checkpoint_dir.c_str(), (long long)ckpt->step, ckpt->metadata.model_kind().c_str(),
        fresh.empty() ? "" : "; fresh: ", some(fresh).c_str(),
        plan.unused.empty() ? "" : "; unused in the checkpoint: ", some(plan.unused).c_str());
    std::fflush(stdout);
  }
  return true;
}

}  // namespace tessera::train
