#include "eval/linear_probe.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>

#include "core/error.h"

namespace tessera::eval {
namespace {

// Samples per chunk of the objective's sum: chunks are summed in order, so the result does not
// depend on the number of threads.
constexpr int64_t kChunk = 256;

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// f(theta) and its gradient; theta = [W (K, D) row-major, b (K)].
double objective(const ProbeData& d, int64_t K, double c, const std::vector<double>& theta,
                 std::vector<double>& grad) {
  const int64_t D = d.dim, P = K * D + K;
  const int64_t chunks = (d.n + kChunk - 1) / kChunk;
  std::vector<double> part_f(chunks, 0.0);
  std::vector<std::vector<double>> part_g(chunks);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    std::vector<double>& g = part_g[ch];
    g.assign(P, 0.0);
    std::vector<double> z(K);
    double f = 0;
    for (int64_t i = ch * kChunk; i < std::min(d.n, (ch + 1) * kChunk); ++i) {
      const float* x = d.x.data() + i * D;
      double zmax = -std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < K; ++k) {
        const double* w = theta.data() + k * D;
        double s = theta[K * D + k];
        for (int64_t j = 0; j < D; ++j) s += w[j] * x[j];
        z[k] = s;
        zmax = std::max(zmax, s);
      }
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += std::exp(z[k] - zmax);
      const double lse = zmax + std::log(sum);
      f += lse - z[d.y[i]];
      for (int64_t k = 0; k < K; ++k) {
        const double r = std::exp(z[k] - lse) - (k == d.y[i] ? 1.0 : 0.0);
        double* gw = g.data() + k * D;
        for (int64_t j = 0; j < D; ++j) gw[j] += r * x[j];
        g[K * D + k] += r;
      }
    }
    part_f[ch] = f;
  }
  grad.assign(P, 0.0);
  double f = 0;
  for (int64_t ch = 0; ch < chunks; ++ch) {
    f += part_f[ch];
    for (int64_t p = 0; p < P; ++p) grad[p] += part_g[ch][p];
  }
  f *= c;
  for (int64_t p = 0; p < P; ++p) grad[p] *= c;
  for (int64_t p = 0; p < K * D; ++p) {  // the L2 penalty (weights only)
    f += 0.5 * theta[p] * theta[p];
    grad[p] += theta[p];
  }
  return f;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double a : v) m = std::max(m, std::fabs(a));
  return m;
}

}  // namespace

LogisticModel fit_logistic(const ProbeData& data, int64_t classes, double c, int max_iterations,
                           double tol) {
  TESSERA_CHECK(data.n > 0 && data.dim > 0 && classes > 1, "linear probe: ", data.n, " samples of ",
                data.dim, " features in ", classes, " classes");
  for (int32_t y : data.y) {
    TESSERA_CHECK(y >= 0 && y < classes, "linear probe: label ", y, " outside [0, ", classes, ")");
  }
  const int64_t K = classes, D = data.dim, P = K * D + K;
  std::vector<double> theta(P, 0.0), grad, next(P), next_grad;
  double f = objective(data, K, c, theta, grad);
  // L-BFGS (Nocedal & Wright, algorithm 7.4) with 10 pairs and a backtracking Armijo search:
  // the objective is smooth and strictly convex, so this reaches the unique optimum.
  struct Pair {
    std::vector<double> s, y;
    double rho;
  };
  std::deque<Pair> history;
  LogisticModel m;
  m.dim = D;
  m.classes = K;
  // Converged when the gradient of the objective divided by C·n (the mean loss's scale, the one
  // scikit-learn's lbfgs tests its tol on) is below tol everywhere.
  const double stop = tol * c * double(data.n);
  int it = 0;
  for (; it < max_iterations && max_abs(grad) > stop; ++it) {
    std::vector<double> q = grad;
    std::vector<double> alpha(history.size());
    for (int h = int(history.size()) - 1; h >= 0; --h) {
      alpha[h] = history[h].rho * dot(history[h].s, q);
      for (int64_t p = 0; p < P; ++p) q[p] -= alpha[h] * history[h].y[p];
    }
    const double gamma = history.empty() ? 1.0 / std::max(1.0, max_abs(grad))
                                         : dot(history.back().s, history.back().y) /
                                               dot(history.back().y, history.back().y);
    for (double& v : q) v *= gamma;
    for (size_t h = 0; h < history.size(); ++h) {
      const double beta = history[h].rho * dot(history[h].y, q);
      for (int64_t p = 0; p < P; ++p) q[p] += (alpha[h] - beta) * history[h].s[p];
    }
    // Direction -q; fall back to steepest descent if it is not a descent direction.
    double slope = -dot(grad, q);
    if (!(slope < 0)) {
      q = grad;
      for (double& v : q) v /= std::max(1.0, max_abs(grad));
      slope = -dot(grad, q);
      history.clear();
    }
    double t = 1.0, f_next = f;
    bool found = false;
    for (int ls = 0; ls < 60; ++ls, t *= 0.5) {
      for (int64_t p = 0; p < P; ++p) next[p] = theta[p] - t * q[p];
      f_next = objective(data, K, c, next, next_grad);
      if (f_next <= f + 1e-4 * t * slope) {
        found = true;
        break;
      }
    }
    if (!found) break;  // no decrease left at double precision: converged as far as it goes
    Pair pair{std::vector<double>(P), std::vector<double>(P), 0};
    for (int64_t p = 0; p < P; ++p) {
      pair.s[p] = next[p] - theta[p];
      pair.y[p] = next_grad[p] - grad[p];
    }
    const double sy = dot(pair.s, pair.y);
    if (sy > 1e-300) {
      pair.rho = 1.0 / sy;
      history.push_back(std::move(pair));
      if (history.size() > 10) history.pop_front();
    }
    theta.swap(next);
    grad.swap(next_grad);
    f = f_next;
  }
  m.w.assign(theta.begin(), theta.begin() + K * D);
  m.b.assign(theta.begin() + K * D, theta.end());
  m.iterations = it;
  m.gradient_norm = max_abs(grad);
  return m;
}

std::vector<int32_t> predict(const LogisticModel& m, const ProbeData& d) {
  TESSERA_CHECK(d.dim == m.dim, "linear probe: features of ", d.dim, " dimensions, the probe has ",
                m.dim);
  std::vector<int32_t> out(d.n);
  for (int64_t i = 0; i < d.n; ++i) {
    const float* x = d.x.data() + i * d.dim;
    double best = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < m.classes; ++k) {
      double s = m.b[k];
      for (int64_t j = 0; j < d.dim; ++j) s += m.w[k * d.dim + j] * x[j];
      if (s > best) {  // ties: the lower class, as numpy's argmax
        best = s;
        out[i] = int32_t(k);
      }
    }
  }
  return out;
}

double top1(const std::vector<int32_t>& predicted, const std::vector<int32_t>& labels) {
  if (labels.empty()) return 0;
  int64_t hits = 0;
  for (size_t i = 0; i < labels.size(); ++i) hits += predicted[i] == labels[i];
  return double(hits) / double(labels.size());
}

void standardise(ProbeData& train, ProbeData& val) {
  const int64_t D = train.dim;
  TESSERA_CHECK(val.dim == D, "linear probe: train features have ", D, " dimensions, val ",
                val.dim);
  for (int64_t j = 0; j < D; ++j) {
    double mean = 0, sq = 0;
    for (int64_t i = 0; i < train.n; ++i) mean += train.x[i * D + j];
    mean /= double(std::max<int64_t>(train.n, 1));
    for (int64_t i = 0; i < train.n; ++i) {
      const double v = train.x[i * D + j] - mean;
      sq += v * v;
    }
    double sd = std::sqrt(sq / double(std::max<int64_t>(train.n, 1)));
    if (!(sd > 0)) sd = 1;
    for (ProbeData* d : {&train, &val}) {
      for (int64_t i = 0; i < d->n; ++i) {
        d->x[i * D + j] = float((d->x[i * D + j] - mean) / sd);
      }
    }
  }
}

std::vector<double> default_probe_strengths() {
  return {1e-3, 1e-2, 1e-1, 1.0};
}

ProbeResult linear_probe(ProbeData train, ProbeData val, int64_t classes,
                         const std::vector<double>& strengths) {
  TESSERA_CHECK(!strengths.empty(), "linear probe: no strengths to sweep");
  standardise(train, val);
  // Hold-out: every 5th train sample scores the sweep; the other 4 of 5 fit it.
  ProbeData fit, hold;
  fit.dim = hold.dim = train.dim;
  for (int64_t i = 0; i < train.n; ++i) {
    ProbeData& to = i % 5 == 4 ? hold : fit;
    to.x.insert(to.x.end(), train.x.begin() + i * train.dim, train.x.begin() + (i + 1) * train.dim);
    to.y.push_back(train.y[i]);
    ++to.n;
  }
  TESSERA_CHECK(hold.n > 0 && fit.n > 0, "linear probe: ", train.n,
                " train samples are too few to hold out every 5th");
  ProbeResult r;
  r.classes = classes;
  double best = -1;
  for (double c : strengths) {
    const double acc = top1(predict(fit_logistic(fit, classes, c), hold), hold.y);
    r.sweep.push_back({c, acc});
    if (acc > best) {
      best = acc;
      r.best_c = c;
    }
  }
  const LogisticModel m = fit_logistic(train, classes, r.best_c);
  r.train_top1 = top1(predict(m, train), train.y);
  r.val_top1 = top1(predict(m, val), val.y);
  return r;
}

}  // namespace tessera::eval
