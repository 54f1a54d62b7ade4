// The `tessera` command: one verb per job (docs/DESIGN.md fixes their names), each with --help.
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

int info();

// One table: a verb is its name, its line in the usage and the function that runs it, so a listed
// verb without a function cannot exist. Each function gets argv from the verb on (argv[0] is the
// verb).
struct Verb {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

constexpr Verb kVerbs[] = {
    {"info", "print the build, CPU features, threads and devices",
     [](int, char**) { return info(); }},
    {"train", "train a model from a config", tessera::tools::train_command},
    {"eval", "evaluate a checkpoint (metrics table and JSON)", tessera::tools::eval_command},
    {"pack", "pack images/text into HDF5 shards", tessera::tools::pack_command},
    {"inspect", "describe a shard, manifest or checkpoint (verifies checksums)",
     tessera::tools::inspect_command},
    {"sample", "sample images from a DiT checkpoint", tessera::tools::sample_command},
    {"export", "export a checkpoint to safetensors", tessera::tools::export_command},
    {"import", "import a Hugging Face GPT-2, ViT or CLIP as a tessera run",
     tessera::tools::import_command},
    {"plot", "plot a run's curves to PNG", tessera::tools::plot_command},
    {"tokenizer", "train a SentencePiece tokenizer", tessera::tools::tokenizer_command},
    {"generate", "generate text from a GPT checkpoint", tessera::tools::generate_command},
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
    if (verb == v.name) return v.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "tessera: unknown verb '%s'\n", argv[1]);
  usage(stderr);
  return 1;
}
