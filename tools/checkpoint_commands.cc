#include "tools/checkpoint_commands.h"

#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "checkpoint/checkpoint.h"
#include "core/safetensors.h"
#include "models/factory.h"
#include "tools/cli_args.h"

namespace tessera::tools {
namespace {

constexpr const char* kExportUsage =
    R"(usage: tessera export --checkpoint CKPT --format safetensors --out FILE

Writes the model parameters of a checkpoint as one safetensors file: full (unsharded) tensors
under their global names (text.blocks.0.attn.qkv.weight, ...), f32, whatever data/tensor-parallel
layout wrote the checkpoint. Loadable with safetensors or by parsing the header (PyTorch, numpy).
The header's __metadata__ holds the step and the model kind.

  --checkpoint CKPT   a step directory, a checkpoints/ directory or a run directory (its latest
                      committed step)
  --format F          safetensors (the only format)
  --out FILE          the output file (written to FILE.tmp, then renamed)

Exit status: 0 written; 1 error (the message names the file and tensor).
)";

std::string shape_text(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

std::string mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

int export_command(int argc, char** argv) {
  CliArgs a;
  if (!parse_cli_args("export", argc, argv, 1, {"--checkpoint", "--format", "--out"}, {}, &a))
    return 1;
  if (a.help) return std::fputs(kExportUsage, stdout), 0;
  const std::string ckpt_path = a.get("--checkpoint"), out = a.get("--out");
  const std::string format = a.get("--format", "safetensors");
  if (ckpt_path.empty() || out.empty()) {
    std::fprintf(stderr, "tessera export: --checkpoint and --out are required\n%s", kExportUsage);
    return 1;
  }
  if (format != "safetensors") {
    return fail("export", "--format " + format + ": only safetensors is supported");
  }
  auto ckpt = checkpoint::open_checkpoint(ckpt_path);
  if (!ckpt.ok()) return fail("export", std::string(ckpt.status().message()));
  try {
    // A model of the checkpoint's config with no tensor parallelism holds every tensor whole;
    // load_model_parameters assembles each one from whatever pieces the writing layout stored.
    std::unique_ptr<models::Model> model = models::make_model(ckpt->config.model());
    models::ParamStore& params = model->params();
    absl::Status s = checkpoint::load_model_parameters(*ckpt, params);
    if (!s.ok()) return fail("export", std::string(s.message()));
    NamedTensors tensors;
    int64_t elements = 0;
    for (int id = 0; id < int(params.infos().size()); ++id) {
      tensors[params.info(id).spec.name] = params.param(id);
      elements += params.info(id).numel;
    }
    s = write_safetensors(out, tensors,
                          {{"format", "pt"},
                           {"tessera_step", std::to_string(ckpt->step)},
                           {"tessera_model", ckpt->metadata.model_kind()},
                           {"tessera_checkpoint", ckpt->dir}});
    if (!s.ok()) return fail("export", std::string(s.message()));
    std::printf("export: %s (step %lld, %s): %zu tensors, %lld parameters -> %s\n",
                ckpt->dir.c_str(), static_cast<long long>(ckpt->step),
                ckpt->metadata.model_kind().c_str(), tensors.size(),
                static_cast<long long>(elements), out.c_str());
    return 0;
  } catch (const std::exception& e) {
    return fail("export", e.what());
  }
}

int inspect_checkpoint(const std::string& path) {
  auto ckpt = checkpoint::open_checkpoint(path);
  if (!ckpt.ok()) return fail("inspect", std::string(ckpt.status().message()));
  const checkpoint::Metadata& m = ckpt->metadata;
  const auto& l = m.layout();
  std::printf("checkpoint %s\n", ckpt->dir.c_str());
  std::printf("  step %lld, model %s, format %d\n", static_cast<long long>(m.step()),
              m.model_kind().c_str(), m.format_version());
  std::printf("  written by world %d = dp %d x tp %d, zero stage %d\n", l.world_size(),
              l.data_parallel(), l.tensor_parallel(), l.zero_stage());
  std::printf("  optimizer %s, %lld updates; data cursor %lld (global batch %lld, source %s)\n",
              m.optimizer().kind().c_str(), static_cast<long long>(m.optimizer().steps_taken()),
              static_cast<long long>(m.data().next_position()),
              static_cast<long long>(m.data().global_batch_size()), m.data().source().c_str());
  std::printf("  last loss %.6g, lr %.3g, grad norm %.4g\n", m.metrics().loss(), m.metrics().lr(),
              m.metrics().grad_norm());
  std::printf("files:\n");
  for (const auto& f : m.files()) {
    std::printf("  rank %5d  %-20s %s\n", f.rank(),
                f.file().empty() ? "(no data)" : f.file().c_str(), mib(double(f.bytes())).c_str());
  }

  int errors = 0;
  absl::Status marker = checkpoint::verify_commit_marker(*ckpt);
  if (!marker.ok()) {
    std::printf("FAILED commit marker: %s\n", std::string(marker.message()).c_str());
    ++errors;
  }
  // Reading each tensor whole reads every stored piece of it; HDF5 verifies each chunk's
  // Fletcher32 checksum on the way and the reader checks that the pieces cover the tensor.
  std::map<std::string, std::pair<int, int64_t>> per_role;  // role -> (tensors, elements)
  checkpoint::TensorReader reader(*ckpt);
  std::printf("tensors:\n  %-8s %-44s %-16s %5s %6s  %s\n", "role", "name", "shape", "split",
              "pieces", "checksums");
  for (const auto& t : m.tensors()) {
    int64_t numel = 1;
    for (int64_t d : t.shape()) numel *= d;
    std::vector<float> values(numel);
    absl::Status s = reader.read(t, values.data());
    std::printf("  %-8s %-44s %-16s %5d %6d  %s\n", t.role().c_str(), t.name().c_str(),
                shape_text(t.shape()).c_str(), t.split_dim(), t.pieces_size(),
                s.ok() ? "ok" : "FAILED");
    if (!s.ok()) {
      std::printf("    %s\n", std::string(s.message()).c_str());
      ++errors;
    }
    auto& [n, elements] = per_role[t.role()];
    ++n;
    elements += numel;
  }
  std::printf("totals:\n");
  for (const auto& [role, v] : per_role) {
    std::printf("  %-8s %4d tensors, %lld elements (%s f32)\n", role.c_str(), v.first,
                static_cast<long long>(v.second), mib(4.0 * double(v.second)).c_str());
  }
  if (errors > 0) {
    std::printf("verification FAILED: %d problem(s) above\n", errors);
    std::fprintf(stderr, "tessera inspect: %s: %d problem(s) (listed on stdout)\n",
                 ckpt->dir.c_str(), errors);
    return 1;
  }
  std::printf("verified: commit marker and every checksum of %d tensors\n", m.tensors_size());
  return 0;
}

}  // namespace tessera::tools
