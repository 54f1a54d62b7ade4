#pragma once
// The verbs for people looking at results: `tessera eval` (eval/run_eval.h), `tessera plot`
// (eval/plot.h), `tessera generate` (GPT text) and `tessera sample` (DiT image grid).

namespace tessera::tools {

int eval_command(int argc, char** argv);      // argv[0] is "eval"
int plot_command(int argc, char** argv);      // argv[0] is "plot"
int generate_command(int argc, char** argv);  // argv[0] is "generate"
int sample_command(int argc, char** argv);    // argv[0] is "sample"

}  // namespace tessera::tools
