#pragma once
// Selecting parameters by global name (docs/DESIGN.md decision 4), for the config fields that
// take lists of names: init.fresh, init.rename (train/init_from.h) and train.freeze
// (train/freeze.h). Lists are comma-separated strings so that `--set` can write them.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/param_store.h"

namespace tessera::train {

// "a, b,,c" -> {"a", "b", "c"}: split at commas, blanks trimmed, empty items dropped.
std::vector<std::string> split_list(const std::string& list);

// fnmatch(3) glob without FNM_PATHNAME: '*' and '?' also match dots ("image.*" is the image
// tower, "*.bias" every bias).
bool glob_match(const std::string& pattern, const std::string& name);

// The parameters of `store` that match any of `patterns` (comma-separated globs), as a flag per
// ParamId. A pattern that matches no parameter is an error naming `field` and the pattern.
absl::StatusOr<std::vector<bool>> match_params(const models::ParamStore& store,
                                               const std::string& patterns,
                                               const std::string& field);

// A prefix rewrite "SOURCE_PREFIX->MODEL_PREFIX" (init.rename).
struct PrefixRule {
  std::string source, model;
};
// Parses init.rename's comma-separated rules; errors name `field` and the malformed rule.
absl::StatusOr<std::vector<PrefixRule>> parse_prefix_rules(const std::string& rules,
                                                           const std::string& field);
// The stored name that model parameter `name` reads: the rule with the longest model prefix of
// `name` rewrites it; `name` itself when none applies. *rule is that rule's index or -1.
std::string source_name(const std::vector<PrefixRule>& rules, const std::string& name,
                        int* rule = nullptr);

}  // namespace tessera::train
