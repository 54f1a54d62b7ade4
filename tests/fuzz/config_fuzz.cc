// A run config (protobuf text) with --set overrides: the input is the config text, then each
// override after a NUL byte. parse_config (defaults, the text, the overrides, validation) either
// fails naming the source or the --set argument, or gives a config that config_to_text writes
// and parse_config reads back to the same message (RUN_DIR/config.pbtxt is read back on resume).
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <string>
#include <vector>

#include "tests/fuzz/fuzz_support.h"
#include "train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t nul = in.find('\0', start);
    parts.push_back(in.substr(start, nul == std::string::npos ? std::string::npos : nul - start));
    if (nul == std::string::npos) break;
    start = nul + 1;
  }
  const std::string text = parts[0];
  const std::vector<std::string> overrides(parts.begin() + 1, parts.end());
  auto config = tessera::train::parse_config(text, "fuzz.pbtxt", overrides);
  if (!config.ok()) return 0;
  const std::string written = tessera::train::config_to_text(*config);
  auto again = tessera::train::parse_config(written, "written.pbtxt");
  if (!again.ok()) std::fprintf(stderr, "%s\n", std::string(again.status().message()).c_str());
  TESSERA_FUZZ_ASSERT(again.ok());
  std::string a, b;
  {
    google::protobuf::io::StringOutputStream sa(&a), sb(&b);
    google::protobuf::io::CodedOutputStream ca(&sa), cb(&sb);
    ca.SetSerializationDeterministic(true);
    cb.SetSerializationDeterministic(true);
    config->SerializeToCodedStream(&ca);
    again->SerializeToCodedStream(&cb);
  }
  TESSERA_FUZZ_ASSERT(a == b);
  return 0;
}
