// bnorm/family.hpp's forward and backward: the arguments checked, then batch norm's
// functions or the family's kernels (family.hpp).
#include "family.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"

#include <fmt/format.h>

namespace bnorm {

namespace {
void check_rms(const NormProblem& p, const void* beta, const void* mean, const char* beta_name) {
    if (p.norm != Norm::rms) return;
    if (beta) throw UsageError(fmt::format("--norm rms has no beta: {} must be omitted", beta_name));
    if (mean) throw UsageError("--norm rms has no mean: --mean must be omitted (it writes --invstd only)");
}

Layout batch_layout(const NormProblem& p) { return Layout{p.middle, p.channels, p.inner}; }
} // namespace

template <class T>
void forward(const T* x, const T* gamma, const T* beta, const NormProblem& p, double eps, T* y, T* mean, T* invstd,
             int threads) {
    check_rms(p, beta, mean, "--beta");
    switch (p.norm) {
    case Norm::batch: return forward(x, gamma, beta, batch_layout(p), eps, y, mean, invstd, threads);
    case Norm::instance:
    case Norm::group: return family::forward_sets(x, gamma, beta, p, eps, y, mean, invstd, threads);
    case Norm::layer:
    case Norm::rms: return family::forward_rows(x, gamma, beta, p, eps, y, mean, invstd, threads);
    }
}

template <class T>
void backward(const T* x, const T* gamma, const T* dy, const NormProblem& p, double eps, T* dx, T* dgamma, T* dbeta,
              int threads) {
    check_rms(p, dbeta, nullptr, "--dbeta");
    switch (p.norm) {
    case Norm::batch: return backward(x, gamma, dy, batch_layout(p), eps, dx, dgamma, dbeta, threads);
    case Norm::instance:
    case Norm::group: return family::backward_sets(x, gamma, dy, p, eps, dx, dgamma, dbeta, threads);
    case Norm::layer:
    case Norm::rms: return family::backward_rows(x, gamma, dy, p, eps, dx, dgamma, dbeta, threads);
    }
}

#define BNORM_FAMILY(T)                                                                                               \
    template void forward<T>(const T*, const T*, const T*, const NormProblem&, double, T*, T*, T*, int);            \
    template void backward<T>(const T*, const T*, const T*, const NormProblem&, double, T*, T*, T*, int);
BNORM_FAMILY(float)
BNORM_FAMILY(double)
#undef BNORM_FAMILY

} // namespace bnorm
