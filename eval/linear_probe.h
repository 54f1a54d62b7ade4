#pragma once
// Linear probes (`tessera eval --probe`): how linearly separable a frozen image tower's features
// are, the standard measure of a representation. A multinomial logistic regression with an L2
// penalty is fitted on the features of the train split and scored (top-1) on the val split.
//
// The objective is scikit-learn's LogisticRegression(C) (multinomial, penalty "l2", intercept
// not penalised): C * sum_i CE(W x_i + b, y_i) + ||W||^2 / 2, minimised to convergence by
// L-BFGS in double precision, so that the solution is the unique optimum and predictions match
// scikit-learn's (tests/eval/linear_probe_test.cc). The features are standardised with the train
// split's per-dimension mean and standard deviation first (fixed before the fit, applied to val).
//
// The strength C is picked from a small sweep on a hold-out of the train split (every 5th
// sample), then the probe is refitted on the whole train split with it: the val split is only
// scored once, with no choice made on it.
//
// Written here rather than taken from a library: the dependencies hold no optimiser, and the
// problem (a few thousand samples, a few hundred dimensions, tens of classes) needs ~100 lines.

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::eval {

struct ProbeData {
  int64_t n = 0, dim = 0;
  std::vector<float> x;    // (n, dim) row-major
  std::vector<int32_t> y;  // (n) class indices in [0, classes)
};

struct LogisticModel {
  int64_t dim = 0, classes = 0;
  std::vector<double> w;  // (classes, dim)
  std::vector<double> b;  // (classes)
  int iterations = 0;
  double gradient_norm = 0;  // max |gradient| at the end (converged when <= tol · C · n)
};

// Fits the multinomial L2 logistic regression above (no standardisation here): L-BFGS until the
// max-abs gradient of the objective over C·n is below tol. Deterministic.
LogisticModel fit_logistic(const ProbeData& data, int64_t classes, double c,
                           int max_iterations = 1000, double tol = 1e-8);
std::vector<int32_t> predict(const LogisticModel& model, const ProbeData& data);
double top1(const std::vector<int32_t>& predicted, const std::vector<int32_t>& labels);

// Standardises train and val in place with train's mean and std (std 0 -> 1).
void standardise(ProbeData& train, ProbeData& val);

struct ProbeResult {
  struct Sweep {
    double c = 0;
    double holdout_top1 = 0;
  };
  std::vector<Sweep> sweep;  // in the order of the sweep
  double best_c = 0;         // the first C with the highest hold-out top-1
  double val_top1 = 0;       // refitted on all of train with best_c
  double train_top1 = 0;
  int64_t classes = 0;
};

// The default sweep of C.
std::vector<double> default_probe_strengths();

// The whole probe: standardise, sweep C on the hold-out, refit, score val. classes: at least
// 1 + the largest label of either split.
ProbeResult linear_probe(ProbeData train, ProbeData val, int64_t classes,
                         const std::vector<double>& strengths = default_probe_strengths());

}  // namespace tessera::eval
