#include "data_pipeline/pack_inputs.h"

#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "data_pipeline/tar_input.h"
#include "nlohmann/json.hpp"

namespace tessera::data {

absl::StatusOr<std::vector<Record>> read_tars(const std::vector<std::string>& tars) {
  std::vector<Record> records;
  for (const std::string& tar : tars) {
    auto samples = read_webdataset_tar(tar);
    if (!samples.ok()) return samples.status();
    for (TarSample& t : *samples) {
      Record r;
      r.line = int64_t(records.size()) + 1;
      r.path = t.source;
      r.caption = std::move(t.caption);
      r.image_bytes = std::move(t.image);
      r.problem = std::move(t.problem);
      records.push_back(std::move(r));
    }
  }
  return records;
}

absl::StatusOr<std::vector<Record>> read_index(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("pack: cannot open index ", path));
  std::vector<Record> records;
  std::string text;
  for (int64_t line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto where = [&] { return absl::StrCat(path, ":", line); };
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      return absl::InvalidArgumentError(absl::StrCat("pack: ", where(), ": not a JSON object"));
    Record r;
    r.line = line;
    auto str = [&](const char* key, std::string* out, bool required) -> absl::Status {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) {
        if (required)
          return absl::InvalidArgumentError(absl::StrCat("pack: ", where(), ": no \"", key, "\""));
        return absl::OkStatus();
      }
      if (!it->is_string())
        return absl::InvalidArgumentError(
            absl::StrCat("pack: ", where(), ": \"", key, "\" is not a string"));
      *out = it->get<std::string>();
      return absl::OkStatus();
    };
    if (auto s = str("path", &r.path, true); !s.ok()) return s;
    if (auto s = str("caption", &r.caption, false); !s.ok()) return s;
    if (auto s = str("label_name", &r.label_name, false); !s.ok()) return s;
    if (auto it = j.find("label"); it != j.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0)
        return absl::InvalidArgumentError(
            absl::StrCat("pack: ", where(), ": \"label\" is not a non-negative integer"));
      r.label = it->get<int64_t>();
    }
    records.push_back(std::move(r));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("pack: error reading index ", path));
  return records;
}

absl::StatusOr<bool> resolve_labels(const PackOptions& options, std::vector<Record>& records,
                                    std::vector<std::string>& names) {
  bool any = false;
  for (const Record& r : records) any = any || r.label || !r.label_name.empty();
  if (!any) return false;
  std::map<std::string, int64_t> by_name;
  if (!options.labels_path.empty()) {
    std::ifstream in(options.labels_path);
    if (!in)
      return absl::NotFoundError(absl::StrCat("pack: cannot open labels ", options.labels_path));
    for (std::string name; std::getline(in, name);) {
      if (!name.empty() && name.back() == '\r') name.pop_back();
      by_name.emplace(name, int64_t(names.size()));
      names.push_back(name);
    }
  }
  const bool fixed = !options.labels_path.empty();
  for (Record& r : records) {
    if (r.label) {
      if (fixed && *r.label >= int64_t(names.size()))
        return absl::InvalidArgumentError(
            absl::StrCat("pack: ", options.index_path, ":", r.line, ": label ", *r.label,
                         " is not below the ", names.size(), " names of ", options.labels_path));
      if (!fixed && *r.label >= int64_t(names.size())) names.resize(*r.label + 1);
      std::string& known = names[*r.label];
      if (!r.label_name.empty() && known.empty() && !fixed) {
        known = r.label_name;
        by_name.emplace(known, *r.label);
      } else if (!r.label_name.empty() && known != r.label_name) {
        return absl::InvalidArgumentError(
            absl::StrCat("pack: ", options.index_path, ":", r.line, ": label ", *r.label,
                         " is named \"", r.label_name, "\" here but \"", known, "\" before"));
      }
    } else if (!r.label_name.empty()) {
      auto it = by_name.find(r.label_name);
      if (it != by_name.end()) {
        r.label = it->second;
      } else if (fixed) {
        return absl::InvalidArgumentError(absl::StrCat("pack: ", options.index_path, ":", r.line,
                                                       ": label_name \"", r.label_name,
                                                       "\" is not in ", options.labels_path));
      } else {
        r.label = int64_t(names.size());
        by_name.emplace(r.label_name, *r.label);
        names.push_back(r.label_name);
      }
    }
  }
  return true;
}

}  // namespace tessera::data
