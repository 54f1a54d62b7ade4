#include "tools/eval_command.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "eval/plot.h"
#include "eval/run_eval.h"
#include "tools/cli_args.h"

namespace tessera::tools {
namespace {

constexpr const char* kEvalUsage =
    R"(usage: tessera eval --checkpoint CKPT [--split val|train|PATH] [--out FILE] [options]

Evaluates a checkpoint (a step, checkpoints or run directory) and prints a table of metrics;
writes them as JSON (metric -> value) to --out, default RUN_DIR/eval.json.
  CLIP/SigLIP  zero-shot top-1/top-5 over the split's label names (prompt templates averaged),
               chance_top1 = 1/classes; image->text and text->image recall@1/5/10
  ViT          top-1/top-5        GPT  val_loss, perplexity
  DiT          val_loss and its value per timestep bucket

  --split S         val (default) or train: the manifest of that name next to the run's
                    data.source (held-out / training positions for synthetic runs), or a
                    manifest path written by tessera pack
  --out FILE        where the JSON goes
  --tokenizer MODEL CLIP: the SentencePiece .model the split's captions were packed with
                    (default: the .model next to the manifest whose hash matches)
  --template T      CLIP zero-shot prompt, {} = the class name (repeatable, averaged; default:
                    the demo captions' form: a clip art of {} ({}) )
  --batch N         samples per forward (default 64)
  --max-samples N   evaluate at most N samples (default: all; synthetic: 512)
  --buckets N       DiT timestep buckets (default 4)
  --device D        cpu (default), cuda or cuda:N: where the model runs
  --weights W       ema (the moving average of the weights, train.ema_decay), raw, or auto
                    (default: ema when the checkpoint holds one, else raw)
  --probe           ViT, CLIP: a linear probe of the image tower instead: multinomial logistic
                    regression (L2, strength C picked from 1e-3..1 on every 5th train sample) on
                    the pooled features of the train split, refitted on all of it; reports
                    probe_top1 on --split (and the sweep); as scikit-learn's LogisticRegression
  --probe-samples N fit the probe on at most N train samples (default: all)
Exit status: 0 done, 1 error (the message names the checkpoint, split or tokenizer).
)";

constexpr const char* kPlotUsage =
    R"(usage: tessera plot RUN_DIR [--out DIR]

Draws RUN_DIR/metrics.jsonl as PNG charts in DIR (default RUN_DIR/plots): loss.png (train and
eval loss), lr.png (learning rate) and eval.png (the eval records' other metrics, if any).
)";

}  // namespace

int eval_command(int argc, char** argv) {
  CliArgs a;
  if (!parse_cli_args(argv[0], argc, argv, 1,
                      {"--checkpoint", "--split", "--out", "--tokenizer", "--template", "--batch",
                       "--max-samples", "--buckets", "--device", "--weights", "--probe-samples"},
                      {"--probe"}, &a)) {
    return 1;
  }
  if (a.help) {
    std::fputs(kEvalUsage, stdout);
    return 0;
  }
  eval::EvalOptions o;
  o.checkpoint = a.get("--checkpoint");
  if (o.checkpoint.empty()) {
    std::fprintf(stderr, "tessera eval: --checkpoint CKPT is required\n%s", kEvalUsage);
    return 1;
  }
  o.split = a.get("--split", "val");
  o.tokenizer = a.get("--tokenizer");
  if (a.values.count("--template")) o.templates = a.values.at("--template");
  long long batch, max_samples, buckets;
  if (!int_flag(a, "eval", "--batch", 64, &batch) ||
      !int_flag(a, "eval", "--max-samples", 0, &max_samples) ||
      !int_flag(a, "eval", "--buckets", 4, &buckets)) {
    return 1;
  }
  o.batch = batch > 0 ? batch : 64;
  o.max_samples = max_samples;
  o.dit_buckets = int(buckets);
  o.probe = a.switches.count("--probe") > 0;
  long long probe_samples;
  if (!int_flag(a, "eval", "--probe-samples", 0, &probe_samples)) return 1;
  o.probe_train_samples = probe_samples;
  if (!device_flag(a, "eval", &o.device)) return 1;
  o.weights = a.get("--weights", "auto");
  auto r = eval::run_eval(o);
  if (!r.ok()) {
    std::fprintf(stderr, "tessera eval: %s\n", std::string(r.status().message()).c_str());
    return 1;
  }
  std::string out = a.get("--out");
  if (out.empty()) {
    out =
        (std::filesystem::path((*r)["checkpoint"].get<std::string>()).parent_path().parent_path() /
         "eval.json")
            .string();
  }
  std::fputs(eval::format_eval_table(*r).c_str(), stdout);
  std::ofstream f(out);
  f << r->dump(2) << "\n";
  if (!f.good()) {
    std::fprintf(stderr, "tessera eval: %s: cannot write\n", out.c_str());
    return 1;
  }
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

int plot_command(int argc, char** argv) {
  CliArgs a;
  if (!parse_cli_args(argv[0], argc, argv, 1, {"--out"}, {}, &a, /*max_positional=*/1)) return 1;
  if (a.help) {
    std::fputs(kPlotUsage, stdout);
    return 0;
  }
  if (a.positional.size() != 1) {
    std::fprintf(stderr, "tessera plot: expected one RUN_DIR\n%s", kPlotUsage);
    return 1;
  }
  const std::string run = a.positional[0];
  const std::string out = a.get("--out", (std::filesystem::path(run) / "plots").string());
  auto files = eval::plot_run(run, out);
  if (!files.ok()) {
    std::fprintf(stderr, "tessera plot: %s\n", std::string(files.status().message()).c_str());
    return 1;
  }
  for (const std::string& f : *files) std::printf("%s\n", f.c_str());
  return 0;
}

}  // namespace tessera::tools
