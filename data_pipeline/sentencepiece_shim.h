#pragma once
// The C interface of libtessera_sentencepiece.so, the one place that links sentencepiece.
//
// Why a separate library loaded with dlopen: Debian's libsentencepiece.so.0 exports its own
// bundled protobuf 3.14 runtime, and `tessera` links the system libprotobuf 3.21. Linked into one
// process image the two bind to each other's symbols (a segfault in static initialisers before
// main, or sentencepiece's version check throwing). tokenizer.cc loads the shim with
// dlmopen(LM_ID_NEWLM): a separate link-map namespace with its own copies of libstdc++ and libc,
// so sentencepiece's protobuf symbols bind to its bundled copy and never meet ours.
// RTLD_DEEPBIND was tried first and crashes: sentencepiece's std::cerr then binds to
// libstdc++'s own, never-constructed object, not to the executable's copy-relocated one.
// Because the namespaces have separate heaps, memory crosses only as the shim's malloc'd
// strings (freed by the shim) and caller-owned buffers. A plain C table keeps C++ objects
// (std::string, absl, exceptions) from crossing:
// Debian's sentencepiece headers also declare `namespace absl { using std::string_view; }`,
// which is ambiguous next to the system Abseil, so only sentencepiece_shim.cc includes them.
//
// Strings returned by the table are malloc'd and released with free_string.

#include <stddef.h>

extern "C" {

struct TesseraSpmApi {
  int abi_version;  // kTesseraSpmAbiVersion of the library that filled the table
  // SentencePieceTrainer::Train with a command-line style argument string: null on success,
  // else sentencepiece's message.
  char* (*train)(const char* args);
  // Loads a .model: a processor handle, or null with *error set.
  void* (*load)(const char* path, char** error);
  void (*free_processor)(void* processor);
  int (*piece_size)(const void* processor);
  int (*eos_id)(const void* processor);
  int (*pad_id)(const void* processor);
  // Encodes text[0, len) into ids[0, capacity) and returns the number of ids, which may exceed
  // capacity (then call again with a larger buffer).
  int (*encode)(const void* processor, const char* text, size_t len, int* ids, int capacity);
  char* (*decode)(const void* processor, const int* ids, int n);
  void (*free_string)(char* s);
};

// The library's one exported symbol.
const TesseraSpmApi* tessera_spm_api(void);
}

constexpr int kTesseraSpmAbiVersion = 1;
constexpr const char* kTesseraSpmLibrary = "libtessera_sentencepiece.so";
