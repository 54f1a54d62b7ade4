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
#include "eval/hf_format.h"
#include "eval/load.h"
#include "eval/state_dict_format.h"
#include "models/factory.h"
#include "tools/cli_args.h"
#include "train/config.h"

namespace tessera::tools {
namespace {

constexpr const char* kExportUsage =
    R"(usage: tessera export --checkpoint CKPT [--format safetensors|hf|timm|open_clip]
                      [--weights W] --out FILE|DIR

Writes the model parameters of a checkpoint as one safetensors file: full (unsharded) tensors
under their global names (text.blocks.0.attn.qkv.weight, ...), f32, whatever data/tensor-parallel
layout wrote the checkpoint. Loadable with safetensors or by parsing the header (PyTorch, numpy).
The header's __metadata__ holds the step, the model kind and which weights were written.

  --checkpoint CKPT   a step directory, a checkpoints/ directory or a run directory (its latest
                      committed step)
  --format F          safetensors (default), or hf: a GPT, ViT classifier or CLIP checkpoint as a
                      Hugging Face GPT2LMHeadModel / ViTForImageClassification / CLIPModel
                      directory
                      (config.json + model.safetensors) that from_pretrained loads
                      (eval/hf_format.h); or timm: a ViT classifier as a state dict
                      of timm's VisionTransformer (eval/timm_vit.h), one safetensors file;
                      or open_clip: a CLIP (image pre_norm) as a state dict of open_clip's
                      CLIP (eval/open_clip.h), one safetensors file
  --weights W         ema (the moving average of the weights, train.ema_decay), raw (the trained
                      parameters), or auto (default: ema when the checkpoint holds one, else raw),
                      as tessera eval and sample; every format
  --out FILE          the output file (written to FILE.tmp, then renamed); a directory for hf

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
  if (!parse_cli_args("export", argc, argv, 1, {"--checkpoint", "--format", "--out", "--weights"},
                      {}, &a))
    return 1;
  if (a.help) return std::fputs(kExportUsage, stdout), 0;
  const std::string ckpt_path = a.get("--checkpoint"), out = a.get("--out");
  const std::string format = a.get("--format", "safetensors");
  if (ckpt_path.empty() || out.empty()) {
    std::fprintf(stderr, "tessera export: --checkpoint and --out are required\n%s", kExportUsage);
    return 1;
  }
  if (format != "safetensors" && format != "hf" && format != "timm" && format != "open_clip") {
    return fail("export", "--format " + format + ": safetensors, hf, timm or open_clip");
  }
  auto ckpt = checkpoint::open_checkpoint(ckpt_path);
  if (!ckpt.ok()) return fail("export", std::string(ckpt.status().message()));
  const auto weights = eval::resolve_weights(*ckpt, a.get("--weights", "auto"));
  if (!weights.ok()) return fail("export", std::string(weights.status().message()));
  if (format == "hf") {
    // A Hugging Face model directory (eval/hf_format.h).
    absl::Status s = eval::export_hf(*ckpt, out, *weights);
    if (!s.ok()) return fail("export", std::string(s.message()));
    std::printf("export: %s (step %lld, %s weights) -> %s/config.json, %s/model.safetensors\n",
                ckpt->dir.c_str(), static_cast<long long>(ckpt->step), weights->c_str(),
                out.c_str(), out.c_str());
    return 0;
  }
  if (format == "timm" || format == "open_clip") {
    // Another library's state dict in one file (eval/state_dict_format.h).
    absl::Status s = eval::export_state_dict(format, *ckpt, out, *weights);
    if (!s.ok()) return fail("export", std::string(s.message()));
    std::printf("export: %s (step %lld, %s weights) -> %s (%s state dict)\n", ckpt->dir.c_str(),
                static_cast<long long>(ckpt->step), weights->c_str(), out.c_str(), format.c_str());
    return 0;
  }
  try {
    // A model of the checkpoint's config with no tensor parallelism holds every tensor whole;
    // load_model_parameters assembles each one from whatever pieces the writing layout stored.
    std::unique_ptr<models::Model> model = models::make_model(ckpt->config.model());
    models::ParamStore& params = model->params();
    absl::Status s = eval::load_weights(*ckpt, *weights, params);
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
                           {"tessera_weights", *weights},
                           {"tessera_checkpoint", ckpt->dir}});
    if (!s.ok()) return fail("export", std::string(s.message()));
    std::printf("export: %s (step %lld, %s, %s weights): %zu tensors, %lld parameters -> %s\n",
                ckpt->dir.c_str(), static_cast<long long>(ckpt->step),
                ckpt->metadata.model_kind().c_str(), weights->c_str(), tensors.size(),
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

namespace {

constexpr const char* kImportUsage =
    R"(usage: tessera import [--format hf|timm|open_clip] --in DIR|FILE --out RUN_DIR
                      [--config BASE.pbtxt] [--set P=V]

Imports a Hugging Face GPT2LMHeadModel, ViTForImageClassification or CLIPModel directory (config.json +
model.safetensors, as save_pretrained writes them) as a tessera GPT, ViT or CLIP: RUN_DIR/config.pbtxt
and a checkpoint at step 0 (no optimizer state yet) that eval, generate, export, train --resume
and init.checkpoint read. The activation (hidden_act / activation_function: gelu_new,
gelu_pytorch_tanh, gelu, quick_gelu) and LayerNorm eps become model.*.transformer.activation and
layer_norm_eps; a setting tessera cannot match is named.

  --format hf         (default) a Hugging Face model directory
  --format timm       a state dict of timm's VisionTransformer (class-token pooling) in one
                      safetensors file: the shapes give the model, except the head count
                      (--set model.vit.transformer.n_heads=H); timm's exact GELU and eps 1e-6
                      unless set (eval/timm_vit.h)
  --format open_clip  a state dict of open_clip's CLIP in one safetensors file: the shapes give
                      the model, except the head counts (--set
                      model.clip.image.transformer.n_heads=H, model.clip.text...); open_clip's
                      exact GELU unless set (QUICK_GELU for -quickgelu models; eval/open_clip.h)
  --in DIR|FILE       the Hugging Face model directory, or the state dict file
  --out RUN_DIR       the tessera run directory to create
  --config BASE       a GPT config for the other settings (train, optim, data, ...); its
                      model.gpt is replaced by the imported one (default: built-in defaults)
  --set PATH=VALUE    overrides on BASE (repeatable)
Exit status: 0 written; 1 error.
)";

}  // namespace

int import_command(int argc, char** argv) {
  CliArgs a;
  if (!parse_cli_args("import", argc, argv, 1, {"--format", "--in", "--out", "--config", "--set"},
                      {}, &a)) {
    return 1;
  }
  if (a.help) return std::fputs(kImportUsage, stdout), 0;
  const std::string in = a.get("--in"), out = a.get("--out");
  const std::string format = a.get("--format", "hf");
  if (in.empty() || out.empty() || (format != "hf" && format != "timm" && format != "open_clip")) {
    std::fprintf(stderr,
                 "tessera import: --format hf|timm|open_clip, --in and --out are required\n%s",
                 kImportUsage);
    return 1;
  }
  std::vector<std::string> sets;
  if (a.values.count("--set")) sets = a.values.at("--set");
  config::Config base;
  const std::string base_path = a.get("--config");
  if (!base_path.empty()) {
    auto c = train::load_config(base_path);
    if (!c.ok()) return fail("import", std::string(c.status().message()));
    if (!c->model().has_gpt() && !c->model().has_vit() && !c->model().has_clip()) {
      return fail("import", base_path + ": --config must be a GPT, ViT or CLIP config");
    }
    base = *c;
  }
  absl::Status s = format == "hf" ? eval::import_hf(in, out, base, sets)
                                  : eval::import_state_dict(format, in, out, base, sets);
  if (!s.ok()) return fail("import", std::string(s.message()));
  std::printf("import: %s -> %s (config.pbtxt, checkpoints/step_00000000)\n", in.c_str(),
              out.c_str());
  return 0;
}

}  // namespace tessera::tools
