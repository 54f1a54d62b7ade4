#pragma once
// The only file that sees the sentencepiece headers is sentencepiece_shim.cc. Debian's
// sentencepiece 0.1.97 declares `namespace absl { using std::string_view; }`, which is
// ambiguous next to the system Abseil's own absl::string_view class, so no translation unit
// may include both; this interface uses only the standard library.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::data::spm {

class Processor;
struct ProcessorDeleter {
  void operator()(Processor* p) const;
};
using ProcessorPtr = std::unique_ptr<Processor, ProcessorDeleter>;

// SentencePieceTrainer::Train with a command-line style argument string. Returns "" on
// success, else sentencepiece's message.
std::string train(const std::string& args);

// Loads a .model; on failure returns null and sets *error.
ProcessorPtr load(const std::string& path, std::string* error);

int piece_size(const Processor& p);
int eos_id(const Processor& p);
int pad_id(const Processor& p);
std::vector<int> encode(const Processor& p, std::string_view text);
std::string decode(const Processor& p, const std::vector<int>& ids);

}  // namespace tessera::data::spm
