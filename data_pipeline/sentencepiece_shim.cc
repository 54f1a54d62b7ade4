// Built alone into libtessera_sentencepiece.so (data_pipeline/CMakeLists.txt), never into
// tessera_data: see sentencepiece_shim.h for why.
#include "data_pipeline/sentencepiece_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

using sentencepiece::SentencePieceProcessor;

char* copy(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

const SentencePieceProcessor& sp(const void* p) {
  return *static_cast<const SentencePieceProcessor*>(p);
}

// No C++ exception may cross the C boundary: each entry point reports them as messages.
char* train(const char* args) try {
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  return status.ok() ? nullptr : copy(status.ToString());
} catch (const std::exception& e) {
  return copy(e.what());
}

void* load(const char* path, char** error) try {
  auto* p = new SentencePieceProcessor;
  const auto status = p->Load(path);
  if (!status.ok()) {
    *error = copy(status.ToString());
    delete p;
    return nullptr;
  }
  return p;
} catch (const std::exception& e) {
  *error = copy(e.what());
  return nullptr;
}

void free_processor(void* p) {
  delete static_cast<SentencePieceProcessor*>(p);
}
int piece_size(const void* p) {
  return sp(p).GetPieceSize();
}
int eos_id(const void* p) {
  return sp(p).eos_id();
}
int pad_id(const void* p) {
  return sp(p).pad_id();
}

int encode(const void* p, const char* text, size_t len, int* ids, int capacity) {
  std::vector<int> out;
  try {
    if (!sp(p).Encode(std::string(text, len), &out).ok()) return 0;
  } catch (const std::exception&) {
    return 0;
  }
  for (int i = 0; i < int(out.size()) && i < capacity; ++i) ids[i] = out[i];
  return int(out.size());
}

char* decode(const void* p, const int* ids, int n) try {
  return copy(sp(p).DecodeIds(std::vector<int>(ids, ids + n)));
} catch (const std::exception&) {
  return copy("");
}

void free_string(char* s) {
  std::free(s);
}

const TesseraSpmApi kApi = {kTesseraSpmAbiVersion,
                            train,
                            load,
                            free_processor,
                            piece_size,
                            eos_id,
                            pad_id,
                            encode,
                            decode,
                            free_string};

}  // namespace

extern "C" __attribute__((visibility("default"))) const TesseraSpmApi* tessera_spm_api(void) {
  return &kApi;
}
