#pragma once
// The data verbs: `tessera pack`, `tessera tokenizer train`, `tessera inspect` (shards and
// manifests). Thin argument parsing in front of data_pipeline/pack.h, tokenizer.h and
// shard_reader.h.

namespace tessera::tools {

int pack_command(int argc, char** argv);       // argv[0] is "pack"
int tokenizer_command(int argc, char** argv);  // argv[0] is "tokenizer"
int inspect_command(int argc, char** argv);    // argv[0] is "inspect"

}  // namespace tessera::tools
