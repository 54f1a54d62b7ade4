#pragma once
// Flag parsing shared by the eval, plot, generate and sample verbs: `--flag VALUE`,
// `--flag=VALUE`, repeatable flags, boolean switches and positional arguments; unknown flags
// are errors naming the verb and the flag.

#include <map>
#include <set>
#include <string>
#include <vector>

namespace tessera::tools {

struct EvalArgs {
  std::map<std::string, std::vector<std::string>> values;
  std::set<std::string> switches;
  std::vector<std::string> positional;
  bool help = false;

  std::string get(const std::string& flag, const std::string& fallback = "") const;
  bool has(const std::string& flag) const { return values.count(flag) || switches.count(flag); }
};

// argv[0] is the verb. Returns false (after printing why) on a bad command line.
bool parse_eval_args(int argc, char** argv, const std::set<std::string>& valued,
                     const std::set<std::string>& switches, EvalArgs* out);

// The flag's value (or `fallback` when absent) as a whole number >= 0 / a number; prints the
// error naming the verb and the flag and returns false when it is not one.
bool int_flag(const EvalArgs& a, const char* verb, const std::string& flag, long long fallback,
              long long* out);
bool float_flag(const EvalArgs& a, const char* verb, const std::string& flag, double fallback,
                double* out);

}  // namespace tessera::tools
