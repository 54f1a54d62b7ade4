#include "data_pipeline/sentencepiece_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

namespace tessera::data::spm {

class Processor : public sentencepiece::SentencePieceProcessor {};

void ProcessorDeleter::operator()(Processor* p) const {
  delete p;
}

std::string train(const std::string& args) {
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  return status.ok() ? std::string() : status.ToString();
}

ProcessorPtr load(const std::string& path, std::string* error) {
  ProcessorPtr p(new Processor);
  const auto status = p->Load(path);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return p;
}

int piece_size(const Processor& p) {
  return p.GetPieceSize();
}
int eos_id(const Processor& p) {
  return p.eos_id();
}
int pad_id(const Processor& p) {
  return p.pad_id();
}
std::vector<int> encode(const Processor& p, std::string_view text) {
  return p.EncodeAsIds(text);
}
std::string decode(const Processor& p, const std::vector<int>& ids) {
  return p.DecodeIds(ids);
}

}  // namespace tessera::data::spm
