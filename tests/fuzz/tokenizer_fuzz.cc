// Tokenizer::load (the SentencePiece .model through tessera's shim, data_pipeline/tokenizer.h)
// on any bytes: an error naming the file, or a tokenizer that encodes text (from the input's
// tail) to ids inside its vocabulary and decodes them back (decode refuses an id outside the
// vocabulary with tessera::Error, which is its contract).
#include "core/error.h"
#include "data_pipeline/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tessera::fuzz::write_input("in.model", data, size);
  auto t = tessera::data::Tokenizer::load(path);
  if (!t.ok()) {
    TESSERA_FUZZ_ASSERT(t.status().message().find(path) != std::string::npos);
    return 0;
  }
  const int vocab = t->vocab_size();
  const std::string_view tail(
      reinterpret_cast<const char*>(data) + size - std::min<size_t>(size, 64),
      std::min<size_t>(size, 64));
  for (std::string_view text : {std::string_view("a photo of a cat"), tail}) {
    const std::vector<int32_t> ids = t->encode(text);
    for (int32_t id : ids) TESSERA_FUZZ_ASSERT(id >= 0 && id < vocab);
    const std::vector<int32_t> padded = t->encode_padded(text, 8);
    TESSERA_FUZZ_ASSERT(padded.size() == 8);
    (void)t->decode(ids);
  }
  // Ids from the input's bytes, some outside the vocabulary.
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 2 <= std::min<size_t>(size, 32); i += 2)
    ids.push_back(int32_t(data[i] | data[i + 1] << 8) - 64);
  try {
    (void)t->decode(ids);
  } catch (const tessera::Error&) {
  }
  return 0;
}
