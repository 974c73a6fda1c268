// Gradient check of any norm of the family (bnorm/gradcheck.hpp's NormProblem overload):
// batch norm goes to the layout overload unchanged; the other norms have their arguments
// checked and each set's step sized here, then run the same set-by-set check
// (gradcheck_engine.cpp) against bnorm::backward of the family or the given gradients.
#include "bnorm/error.hpp"
#include "bnorm/gradcheck.hpp"
#include "ddouble.hpp"
#include "gradcheck_engine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace bnorm {

namespace {

using detail::dd;

/// Where set s is, for an error message: "sample 1, channel 2", "sample 0, group 3", "row 5".
std::string describe_set(const NormProblem& p, std::int64_t s) {
    const std::int64_t per_sample = p.sets / p.samples;
    switch (p.norm) {
    case Norm::instance: return fmt::format("sample {}, channel {}", s / per_sample, s % per_sample);
    case Norm::group: return fmt::format("sample {}, group {}", s / per_sample, s % per_sample);
    default: return fmt::format("row {} (of the {} before axis {})", s, p.sets, p.axis);
    }
}

/// h_s = 2^-70 of each set's standard deviation sqrt(var + eps) (rms: sqrt(mean(x²) +
/// eps)): the size of the complex step, which needs the statistics only roughly, so they
/// are computed here in double-double from their definitions, on x·2^-k with 2^k near
/// the set's largest |x| (its squares stay in range at any magnitude). Refuses a set whose
/// var + eps is 0, decided exactly: eps = 0 and a constant set (rms: a set of zeros).
template <class T>
std::vector<double> set_steps(const T* x, const NormProblem& p, const gradcheck_detail::SetMap& map, double eps) {
    const std::int64_t sets = map.sets(), m = map.per_set();
    const double md = double(m);
    std::vector<double> step(sets);
    for (std::int64_t s = 0; s < sets; ++s) {
        auto xv = [&](std::int64_t j) { return double(x[map.flat(s, j)]); };
        if (eps == 0) {
            bool degenerate = true;
            for (std::int64_t j = 0; j < m && degenerate; ++j) degenerate = map.centered ? xv(j) == xv(0) : xv(j) == 0;
            if (degenerate)
                throw InputError(fmt::format("{} norm: the set of {} has {} and eps = 0: invstd = 1/sqrt({} + eps) "
                                             "is infinite (use eps > 0)",
                                             norm_name(p.norm), describe_set(p, s),
                                             map.centered ? "zero variance" : "only zeros (mean square 0)",
                                             map.centered ? "var" : "mean(x^2)"));
        }
        double largest = 0;
        for (std::int64_t j = 0; j < m; ++j) largest = std::max(largest, std::abs(xv(j)));
        const int k = largest > 0 && std::isfinite(largest) ? std::ilogb(largest) : 0;
        const auto xv_scaled = [&](std::int64_t j) { return std::ldexp(xv(j), -k); };
        dd second{};
        if (map.centered) {
            dd sum{};
            for (std::int64_t j = 0; j < m; ++j) sum = detail::add(sum, xv_scaled(j));
            const dd mean = detail::div(sum, md);
            for (std::int64_t j = 0; j < m; ++j) {
                const dd d = detail::add(detail::neg(mean), xv_scaled(j));
                second = detail::add(second, detail::mul(d, d));
            }
        } else {
            for (std::int64_t j = 0; j < m; ++j) second = detail::add(second, detail::two_prod(xv_scaled(j), xv_scaled(j)));
        }
        const double var = detail::to<double>(detail::div(second, md)), eps_scaled = std::ldexp(eps, -2 * k);
        step[s] = std::isfinite(eps_scaled) ? std::ldexp(std::sqrt(var + eps_scaled), k - 70) // (var negligible else)
                                            : std::ldexp(std::sqrt(eps), -70);
    }
    return step;
}

} // namespace

template <class T>
GradcheckReport gradcheck(const T* x, const NormProblem& p, const T* gamma, const T* beta, const T* dy, double eps,
                          const GivenGradients<T>& given, const GradcheckOptions& opt) {
    if (p.norm == Norm::batch)
        return gradcheck(x, p.shape, Layout{p.middle, p.channels, p.inner}, gamma, beta, dy, eps, given, opt);
    const std::string_view name = norm_name(p.norm);
    if (opt.eval)
        throw UsageError(fmt::format("--mode eval applies to --norm batch only: --norm {} has no running statistics",
                                     name));
    if (p.norm == Norm::rms && beta) throw UsageError("--norm rms has no beta: --beta must be omitted");
    if (p.norm == Norm::rms && given.dbeta) throw UsageError("--norm rms has no beta: --dbeta must be omitted");
    if (given.any() && !dy) throw UsageError("judging given gradients needs the --dy they were computed for");

    gradcheck_detail::CheckInputs<T> in;
    in.x = x;
    in.shape = p.shape;
    in.map = gradcheck_detail::norm_sets(p);
    in.param_shape = p.param_shape;
    in.has_beta = p.norm != Norm::rms;
    in.gamma = gamma;
    in.beta = beta;
    in.dy = dy;
    in.eps = eps;
    in.given = given;
    in.step = set_steps(x, p, in.map, eps);
    in.backward = [&](const T* dy_draw, T* dx, T* dgamma, T* dbeta) {
        backward<T>(x, gamma, dy_draw, p, eps, dx, dgamma, dbeta, opt.threads);
    };
    in.scales = gradcheck_detail::gradient_scales(x, gamma, p, eps, opt);
    return gradcheck_detail::run_check(in, opt);
}

template GradcheckReport gradcheck<float>(const float*, const NormProblem&, const float*, const float*, const float*,
                                          double, const GivenGradients<float>&, const GradcheckOptions&);
template GradcheckReport gradcheck<double>(const double*, const NormProblem&, const double*, const double*,
                                           const double*, double, const GivenGradients<double>&,
                                           const GradcheckOptions&);

} // namespace bnorm
