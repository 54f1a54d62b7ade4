// The `tessera` command: one verb per job (DESIGN.md fixes their names), each with --help.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "core/allocator.h"
#include "core/threads.h"
#include "dnnl.hpp"
#include "ops/machine_peaks.h"
#include "tools/checkpoint_commands.h"
#include "tools/data_commands.h"
#include "tools/eval_command.h"
#include "tools/train_command.h"

namespace {

struct Verb {
  const char* name;
  const char* summary;
};

constexpr Verb kVerbs[] = {
    {"info", "print the build, CPU features, threads and devices"},
    {"train", "train a model from a config"},
    {"eval", "evaluate a checkpoint (metrics table and JSON)"},
    {"pack", "pack images/text into HDF5 shards"},
    {"inspect", "describe a shard, manifest or checkpoint (verifies checksums)"},
    {"sample", "sample images from a DiT checkpoint"},
    {"export", "export a checkpoint to safetensors"},
    {"plot", "plot a run's curves to PNG"},
    {"tokenizer", "train a SentencePiece tokenizer"},
    {"generate", "generate text from a GPT checkpoint"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: tessera VERB [options]   (tessera VERB --help)\n\nverbs:\n");
  for (const Verb& v : kVerbs) {
    std::fprintf(out, "  %-10s %s\n", v.name, v.summary);
  }
}

int info() {
  const dnnl_version_t* v = dnnl_version();
  std::printf("tessera 0.1\n");
  std::printf("oneDNN %d.%d.%d\n", v->major, v->minor, v->patch);
  try {
    // The kernels' instruction-set path and the bf16 GEMM engine: why a machine is fast or slow.
    std::printf("%s\n", tessera::ops::cpu_paths_summary().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tessera info: %s\n", e.what());
    return 1;
  }
  std::printf("threads: %d\n", tessera::num_threads());
  std::printf("cuda: %s, devices: %d\n", tessera::cuda_compiled() ? "compiled" : "not compiled",
              tessera::cuda_device_count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tessera::init_threads_from_env();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 1 : 0;
  }
  std::string_view verb = argv[1];
  for (const Verb& v : kVerbs) {
    if (verb != v.name) continue;
    if (verb == "train") return tessera::tools::train_command(argc - 1, argv + 1);
    if (verb == "pack") return tessera::tools::pack_command(argc - 1, argv + 1);
    if (verb == "inspect") return tessera::tools::inspect_command(argc - 1, argv + 1);
    if (verb == "export") return tessera::tools::export_command(argc - 1, argv + 1);
    if (verb == "tokenizer") return tessera::tools::tokenizer_command(argc - 1, argv + 1);
    if (verb == "eval") return tessera::tools::eval_command(argc - 1, argv + 1);
    if (verb == "plot") return tessera::tools::plot_command(argc - 1, argv + 1);
    if (verb == "generate") return tessera::tools::generate_command(argc - 1, argv + 1);
    if (verb == "sample") return tessera::tools::sample_command(argc - 1, argv + 1);
    return info();
  }
  std::fprintf(stderr, "tessera: unknown verb '%s'\n", argv[1]);
  usage(stderr);
  return 1;
}
