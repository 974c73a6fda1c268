// bnorm/judge.hpp's scales: per element, the magnitudes of the terms that a correct kernel
// sums to get it, for every norm of the family. Plain double arithmetic: a scale is only a
// yardstick, needed to a few digits, never an output.
#include "bnorm/judge.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace bnorm {
namespace {

/// Which set of statistics and which γ, β element i of x (C order) belongs to.
struct ElementMap {
    const NormProblem& p;
    bool rows() const { return p.norm == Norm::layer || p.norm == Norm::rms; }
    std::int64_t param(std::int64_t i) const { return rows() ? i % p.per_set : (i / p.inner) % p.channels; }
    std::int64_t set(std::int64_t i) const {
        if (rows()) return i / p.per_set;
        const std::int64_t c = (i / p.inner) % p.channels;
        const std::int64_t n = i / (p.middle * p.channels * p.inner); // the sample (batch: 0)
        switch (p.norm) {
        case Norm::instance: return n * p.channels + c;
        case Norm::group: return n * p.groups + c / (p.channels / p.groups);
        default: return c;
        }
    }
};

double at(const double* a, std::int64_t i, double none) { return a ? a[i] : none; }

/// x̂ of element i (rms: no mean subtracted).
double xhat(const double* x, const double* mean, const double* invstd, const ElementMap& e, std::int64_t i) {
    const std::int64_t s = e.set(i);
    return (x[i] - at(mean, s, 0.0)) * invstd[s];
}

/// σ·invstd = sqrt(1 − eps·invstd²) of a set, σ = sqrt(1/invstd² − eps) its standard
/// deviation (rms: its root mean square), in a form that neither overflows nor underflows
/// for any magnitude of x (1/invstd² does beyond 1e154 or below 1e-154).
double sigma_invstd(double invstd, double eps) {
    const double e = eps == 0 ? 0.0 : eps * invstd * invstd; // eps > 0: invstd ≤ 1/sqrt(eps), e ≤ 1
    return std::sqrt(std::max(1 - e, 0.0));
}

/// σ·invstd of each set: the set's typical |x̂|, the size at which the rounding of its mean
/// reaches x̂.
std::vector<double> typical_xhat(const double* invstd, const NormProblem& p, double eps) {
    std::vector<double> t(std::size_t(p.sets));
    for (std::int64_t s = 0; s < p.sets; ++s) t[std::size_t(s)] = sigma_invstd(invstd[s], eps);
    return t;
}

} // namespace

void scale_y(const double* x, const double* gamma, const double* beta, const double* mean, const double* invstd,
             const NormProblem& p, double eps, double* scale) {
    const ElementMap e{p};
    const std::vector<double> sigma = typical_xhat(invstd, p, eps);
    for (std::int64_t i = 0; i < p.size(); ++i) {
        const std::int64_t k = e.param(i);
        scale[i] = std::fabs(at(gamma, k, 1.0)) * (std::fabs(xhat(x, mean, invstd, e, i)) + sigma[std::size_t(e.set(i))]) +
                   std::fabs(at(beta, k, 0.0));
    }
}

void scale_dx(const double* x, const double* gamma, const double* dy, const double* mean, const double* invstd,
              const NormProblem& p, double* scale) {
    const ElementMap e{p};
    // per set: mean|dx̂| and mean|dx̂·x̂|, dx̂ = γ·dy
    std::vector<double> abs_dxh(std::size_t(p.sets)), abs_dxh_xh(std::size_t(p.sets));
    for (std::int64_t i = 0; i < p.size(); ++i) {
        const std::size_t s = std::size_t(e.set(i));
        const double dxh = std::fabs(at(gamma, e.param(i), 1.0) * dy[i]);
        abs_dxh[s] += dxh;
        abs_dxh_xh[s] += dxh * std::fabs(xhat(x, mean, invstd, e, i));
    }
    const double m = double(p.per_set);
    const bool rms = p.norm == Norm::rms; // no mean: no Σdx̂ term
    for (std::int64_t i = 0; i < p.size(); ++i) {
        const std::size_t s = std::size_t(e.set(i));
        const double dxh = std::fabs(at(gamma, e.param(i), 1.0) * dy[i]);
        scale[i] = invstd[s] * (dxh + (rms ? 0.0 : abs_dxh[s] / m) +
                                std::fabs(xhat(x, mean, invstd, e, i)) * abs_dxh_xh[s] / m);
    }
}

void scale_dx_eval(const double* gamma, const double* dy, const double* invstd, const NormProblem& p, double* scale) {
    const ElementMap e{p};
    for (std::int64_t i = 0; i < p.size(); ++i)
        scale[i] = invstd[e.set(i)] * std::fabs(at(gamma, e.param(i), 1.0) * dy[i]);
}

void scale_dgamma_dbeta(const double* x, const double* dy, const double* mean, const double* invstd,
                        const NormProblem& p, double eps, double* dgamma, double* dbeta) {
    const ElementMap e{p};
    const std::vector<double> sigma = typical_xhat(invstd, p, eps);
    if (dgamma) std::fill(dgamma, dgamma + p.params, 0.0);
    if (dbeta) std::fill(dbeta, dbeta + p.params, 0.0);
    for (std::int64_t i = 0; i < p.size(); ++i) {
        const std::int64_t k = e.param(i);
        if (dgamma)
            dgamma[k] += std::fabs(dy[i]) * (std::fabs(xhat(x, mean, invstd, e, i)) + sigma[std::size_t(e.set(i))]);
        if (dbeta) dbeta[k] += std::fabs(dy[i]);
    }
}

void scale_mean(const double* x, const NormProblem& p, double* scale) {
    const ElementMap e{p};
    std::fill(scale, scale + p.sets, 0.0);
    for (std::int64_t i = 0; i < p.size(); ++i) scale[e.set(i)] += std::fabs(x[i]);
    for (std::int64_t s = 0; s < p.sets; ++s) scale[s] /= double(p.per_set);
}

void scale_running(const double* x, const double* old_mean, const double* old_var, const double* invstd,
                   double momentum, int correction, double eps, const NormProblem& p, double* new_mean,
                   double* new_var) {
    std::vector<double> abs_mean(std::size_t(p.sets));
    scale_mean(x, p, abs_mean.data());
    const double m = double(p.per_set);
    for (std::int64_t s = 0; s < p.sets; ++s) {
        if (new_mean) new_mean[s] = (1 - momentum) * std::fabs(old_mean[s]) + momentum * abs_mean[std::size_t(s)];
        const double sigma = sigma_invstd(invstd[s], eps) / invstd[s], var = sigma * sigma;
        if (new_var) new_var[s] = (1 - momentum) * std::fabs(old_var[s]) + momentum * var * m / (m - correction);
    }
}

} // namespace bnorm
