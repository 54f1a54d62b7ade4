#include "eval/hf_transformer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "models/transformer_options.h"

namespace tessera::eval {

void activation_from_hf(const std::string& act, const std::string& field,
                        config::TransformerConfig* t, std::vector<std::string>& problems) {
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") {
    t->clear_activation();  // GELU_TANH, the default
  } else if (act == "gelu" || act == "gelu_python") {
    t->set_activation(config::TransformerConfig::GELU_ERF);
  } else if (act == "quick_gelu") {
    t->set_activation(config::TransformerConfig::QUICK_GELU);
  } else {
    problems.push_back(absl::StrCat(field, " \"", act,
                                    "\": tessera has GELU (tanh: gelu_new, gelu_pytorch_tanh; "
                                    "erf: gelu) and quick_gelu"));
  }
}

void layer_norm_eps_from_hf(const nlohmann::json& eps, const std::string& field,
                            config::TransformerConfig* t, std::vector<std::string>& problems) {
  if (!eps.is_number()) {
    problems.push_back(absl::StrCat(field, ": not a number"));
    return;
  }
  const float e = float(eps.get<double>());
  if (!(e > 0) || !std::isfinite(e)) {
    problems.push_back(absl::StrCat(field, " ", eps.get<double>(), ": must be a finite eps > 0"));
  } else if (e == models::block_layer_norm_eps(config::TransformerConfig())) {
    t->clear_layer_norm_eps();
  } else {
    t->set_layer_norm_eps(e);
  }
}

std::string hf_activation(const config::TransformerConfig& t, const char* tanh_name) {
  switch (t.activation()) {
    case config::TransformerConfig::GELU_ERF:
      return "gelu";
    case config::TransformerConfig::QUICK_GELU:
      return "quick_gelu";
    default:
      return tanh_name;
  }
}

double hf_layer_norm_eps(const config::TransformerConfig& t) {
  const float e = models::block_layer_norm_eps(t);
  char text[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, double(e));
    const double d = std::strtod(text, nullptr);
    if (float(d) == e) return d;
  }
  return double(e);
}

}  // namespace tessera::eval
