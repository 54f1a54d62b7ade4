#include "train/param_patterns.h"

#include <fnmatch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tessera::train {

std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  for (absl::string_view item : absl::StrSplit(list, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (!item.empty()) out.emplace_back(item);
  }
  return out;
}

bool glob_match(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

absl::StatusOr<std::vector<bool>> match_params(const models::ParamStore& store,
                                               const std::string& patterns,
                                               const std::string& field) {
  std::vector<bool> hit(store.infos().size(), false);
  for (const std::string& p : split_list(patterns)) {
    bool any = false;
    for (size_t i = 0; i < store.infos().size(); ++i) {
      if (glob_match(p, store.infos()[i].spec.name)) hit[i] = any = true;
    }
    if (!any) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": pattern \"", p, "\" matches no parameter of the model (",
                       store.infos().size(), " parameters, e.g. ",
                       store.infos().empty() ? "none" : store.infos().front().spec.name, ")"));
    }
  }
  return hit;
}

absl::StatusOr<std::vector<PrefixRule>> parse_prefix_rules(const std::string& rules,
                                                           const std::string& field) {
  std::vector<PrefixRule> out;
  for (const std::string& r : split_list(rules)) {
    const size_t arrow = r.find("->");
    if (arrow == std::string::npos || r.find("->", arrow + 2) != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": rule \"", r, "\" is not SOURCE_PREFIX->MODEL_PREFIX (e.g. \"->image.\")"));
    }
    out.push_back({std::string(absl::StripAsciiWhitespace(r.substr(0, arrow))),
                   std::string(absl::StripAsciiWhitespace(r.substr(arrow + 2)))});
  }
  return out;
}

std::string source_name(const std::vector<PrefixRule>& rules, const std::string& name, int* rule) {
  int best = -1;
  for (size_t i = 0; i < rules.size(); ++i) {
    const std::string& m = rules[i].model;
    if (name.compare(0, m.size(), m) == 0 && (best < 0 || m.size() > rules[best].model.size())) {
      best = static_cast<int>(i);
    }
  }
  if (rule) *rule = best;
  if (best < 0) return name;
  return rules[best].source + name.substr(rules[best].model.size());
}

}  // namespace tessera::train
