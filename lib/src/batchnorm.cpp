// Batch normalization kernels. One kernel serves every layout: the tensor is viewed as
// (outer, C, inner) and walked row by row, a row being the `inner` contiguous elements
// of one (o, c). Every pass visits rows in the same fixed order, so results do not
// depend on anything but the input.
//
// Precision: all arithmetic on data values is double-double (ddouble.hpp). The steps,
// with the names used in docs/derivation.md:
//   pass 1   S1 = Σ x                      -> mean₀ = S1/m       (dd, error ~m·2^-106·Σ|x|)
//   pass 2   d = x − mean₀ (dd, nearly exact), S_d = Σ d, S_dd = Σ d²
//            mean = mean₀ + S_d/m          (corrected two-pass: removes pass 1's error)
//            var  = (S_dd − S_d²/m)/m      (biased variance, exact identity)
//   pass 3   forward:  y = γ·(x − mean)·invstd + β
//            backward: dβ = Σ dy, dγ = invstd·Σ dy·(x − mean), then
//                      dx = γ·invstd·(dy − dβ/m − x̂·dγ/m)
#include "bnorm/batchnorm.hpp"

#include "bnorm/error.hpp"
#include "ddouble.hpp"

#include <fmt/format.h>

#include <cassert>
#include <cmath>
#include <vector>

namespace bnorm {
namespace {

using detail::dd;

/// Calls row(c, offset) for every row of the (outer, C, inner) view in memory order;
/// the row holds x[offset .. offset + inner).
template <class F> void for_each_row(const Layout& l, F&& row) {
    std::int64_t offset = 0;
    for (std::int64_t o = 0; o < l.outer; ++o)
        for (std::int64_t c = 0; c < l.channels; ++c, offset += l.inner) row(c, offset);
}

struct ChannelStats {
    dd mean;
    dd invstd;
};

/// Passes 1 and 2: the mean and invstd of every channel, to ~106 bits.
/// Throws InputError when var + eps == 0 (eps = 0 and a constant channel).
template <class T>
std::vector<ChannelStats> channel_stats(const T* x, const Layout& l, double eps) {
    const auto C = static_cast<std::size_t>(l.channels);
    const double m = static_cast<double>(l.per_channel());

    // pass 1: S1 = Σ x, per channel. x is (outer, C, inner).
    std::vector<dd> s1(C);
    for_each_row(l, [&](std::int64_t c, std::int64_t off) {
        dd row{};
        for (std::int64_t k = 0; k < l.inner; ++k) row = detail::add(row, double(x[off + k]));
        s1[c] = detail::add(s1[c], row);
    });

    std::vector<ChannelStats> stats(C);
    for (std::size_t c = 0; c < C; ++c) stats[c].mean = detail::div(s1[c], m); // mean₀

    // pass 2: d = x − mean₀, S_d = Σ d, S_dd = Σ d², per channel.
    std::vector<dd> sd(C), sdd(C);
    for_each_row(l, [&](std::int64_t c, std::int64_t off) {
        const dd neg_mean0 = detail::neg(stats[c].mean);
        dd row_d{}, row_dd{};
        for (std::int64_t k = 0; k < l.inner; ++k) {
            const dd d = detail::add(neg_mean0, double(x[off + k]));
            row_d = detail::add(row_d, d);
            row_dd = detail::add(row_dd, detail::mul(d, d));
        }
        sd[c] = detail::add(sd[c], row_d);
        sdd[c] = detail::add(sdd[c], row_dd);
    });

    for (std::size_t c = 0; c < C; ++c) {
        const dd shift = detail::div(sd[c], m); // mean − mean₀
        stats[c].mean = detail::add(stats[c].mean, shift);
        // Σ (x − mean)² = S_dd − m·shift² = S_dd − S_d·shift
        const dd ss = detail::sub(sdd[c], detail::mul(sd[c], shift));
        const dd var = detail::div(ss, m);
        const dd var_eps = detail::add(var, eps);
        if (!(var_eps.hi > 0) && !std::isnan(var_eps.hi))
            throw InputError(fmt::format(
                "channel {} has zero variance and eps = 0: invstd = 1/sqrt(var + eps) is "
                "infinite (use eps > 0)",
                c));
        stats[c].invstd = detail::rsqrt(var_eps);
    }
    return stats;
}

/// x̂ = (x − mean)·invstd in dd.
inline dd normalized(double x, const ChannelStats& s) {
    return detail::mul(detail::add(detail::neg(s.mean), x), s.invstd);
}

} // namespace

template <class T>
void forward(const T* x, const Layout& l, const T* gamma, const T* beta, double eps, T* y,
             T* mean, T* invstd) {
    assert(l.channels >= 1 && l.per_channel() >= 2 && eps >= 0);
    const std::vector<ChannelStats> stats = channel_stats(x, l, eps);

    for (std::int64_t c = 0; c < l.channels; ++c) {
        if (mean) mean[c] = detail::to<T>(stats[c].mean);
        if (invstd) invstd[c] = detail::to<T>(stats[c].invstd);
    }

    // pass 3: y = γ·x̂ + β. y and x are (outer, C, inner).
    for_each_row(l, [&](std::int64_t c, std::int64_t off) {
        const double g = gamma ? double(gamma[c]) : 1.0;
        const double b = beta ? double(beta[c]) : 0.0;
        for (std::int64_t k = 0; k < l.inner; ++k) {
            const dd xhat = normalized(double(x[off + k]), stats[c]);
            y[off + k] = detail::to<T>(detail::add(detail::mul(xhat, g), b));
        }
    });
}

template <class T>
void backward(const T* x, const T* gamma, const T* dy, const Layout& l, double eps, T* dx,
              T* dgamma, T* dbeta) {
    assert(l.channels >= 1 && l.per_channel() >= 2 && eps >= 0);
    const auto C = static_cast<std::size_t>(l.channels);
    const double m = static_cast<double>(l.per_channel());
    const std::vector<ChannelStats> stats = channel_stats(x, l, eps);

    // pass 3a: dβ = Σ dy and Σ dy·(x − mean), per channel (dγ = invstd·Σ dy·(x − mean)).
    std::vector<dd> sum_dy(C), sum_dy_d(C);
    for_each_row(l, [&](std::int64_t c, std::int64_t off) {
        const dd neg_mean = detail::neg(stats[c].mean);
        dd row_dy{}, row_dy_d{};
        for (std::int64_t k = 0; k < l.inner; ++k) {
            const double g = double(dy[off + k]);
            row_dy = detail::add(row_dy, g);
            row_dy_d = detail::add(row_dy_d, detail::mul(detail::add(neg_mean, double(x[off + k])), g));
        }
        sum_dy[c] = detail::add(sum_dy[c], row_dy);
        sum_dy_d[c] = detail::add(sum_dy_d[c], row_dy_d);
    });

    // Per channel: dβ, dγ and the terms of dx = γ·invstd·(dy − dβ/m − x̂·dγ/m).
    struct Terms {
        dd dbeta_over_m;  // term 2: mean of dy
        dd dgamma_over_m; // term 3 factor: mean of dy·x̂
        dd scale;         // γ·invstd
    };
    std::vector<Terms> terms(C);
    for (std::size_t c = 0; c < C; ++c) {
        const dd dg = detail::mul(sum_dy_d[c], stats[c].invstd);
        if (dbeta) dbeta[c] = detail::to<T>(sum_dy[c]);
        if (dgamma) dgamma[c] = detail::to<T>(dg);
        const double g = gamma ? double(gamma[c]) : 1.0;
        terms[c] = {detail::div(sum_dy[c], m), detail::div(dg, m), detail::mul(stats[c].invstd, g)};
    }

    // pass 3b: dx. dx, dy and x are (outer, C, inner).
    for_each_row(l, [&](std::int64_t c, std::int64_t off) {
        const Terms& t = terms[c];
        for (std::int64_t k = 0; k < l.inner; ++k) {
            const dd xhat = normalized(double(x[off + k]), stats[c]);
            // term 1 − term 2 − term 3 = dy − dβ/m − x̂·dγ/m
            const dd inner_sum = detail::sub(detail::add(detail::neg(t.dbeta_over_m), double(dy[off + k])),
                                             detail::mul(xhat, t.dgamma_over_m));
            dx[off + k] = detail::to<T>(detail::mul(inner_sum, t.scale));
        }
    });
}

template void forward<float>(const float*, const Layout&, const float*, const float*, double,
                             float*, float*, float*);
template void forward<double>(const double*, const Layout&, const double*, const double*,
                              double, double*, double*, double*);
template void backward<float>(const float*, const float*, const float*, const Layout&, double,
                              float*, float*, float*);
template void backward<double>(const double*, const double*, const double*, const Layout&,
                               double, double*, double*, double*);

} // namespace bnorm
