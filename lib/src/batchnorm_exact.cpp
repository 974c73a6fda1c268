// The all-double-double batch-norm kernels: slower than the fast path's (forward_pass.cpp,
// backward_pass.cpp), and valid for every input, whatever its magnitude (1e-300 to 1e300)
// or finiteness. The fast path falls back on them for data outside its range, and the
// tests use them as a cross-check. One kernel serves every layout: the tensor is viewed as
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
// The backward pass takes each channel of finite values from its exact sums instead
// (ExactSet): dx can be a tiny fraction of its three terms, or 0, beyond double-double.
#include "batchnorm_exact.hpp"

#include "bnorm/error.hpp"
#include "ddouble.hpp"
#include "exact_set.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <optional>
#include <vector>

namespace bnorm::detail {
namespace {


/// Calls row(c, offset) for every row of the (outer, C, inner) view in memory order;
/// the row holds x[offset .. offset + inner).
template <class F> void for_each_row(const Layout& l, F&& row) {
    std::int64_t offset = 0;
    for (std::int64_t o = 0; o < l.outer; ++o)
        for (std::int64_t c = 0; c < l.channels; ++c, offset += l.inner) row(c, offset);
}

/// A channel's statistics. Deviations from the mean are handled scaled by 2^-exponent,
/// where 2^exponent is about the channel's largest |x|: the scaled deviations are at most
/// 4, so their squares and products can neither overflow nor underflow, whatever the
/// magnitude of the data (1e-300 to 1e300). Scaling by a power of two is exact.
struct ChannelStats {
    int exponent = 0;
    double scale = 1;  // 2^-exponent
    dd mean_scaled;    // mean · 2^-exponent
    dd invstd_scaled;  // invstd · 2^exponent
    /// (x − mean)·2^-exponent; x is scaled first so that tiny data stays in the normal range.
    dd scaled_deviation(double x) const { return add(neg(mean_scaled), x * scale); }
    /// x̂ = (x − mean)·invstd
    dd normalized(double x) const { return mul(scaled_deviation(x), invstd_scaled); }
    std::optional<ScaledMean> exact_mean; // from the exact sum, when the channel is finite
    dd mean() const { return exact_mean ? exact_mean->scaled(0) : ldexp(mean_scaled, exponent); }
    dd invstd() const { return ldexp(invstd_scaled, -exponent); }
};

/// Passes 1 and 2: the mean and invstd of every channel, to ~106 bits.
/// Throws InputError when var + eps == 0 (eps = 0 and a constant channel).
template <class T>
std::vector<ChannelStats> channel_stats(const T* x, const Layout& l, double eps) {
    const auto C = static_cast<std::size_t>(l.channels);
    const double m = static_cast<double>(l.per_channel());

    // pass 1: S1 = Σ x and max |x|, per channel. x is (outer, C, inner).
    std::vector<dd> s1(C);
    std::vector<double> max_abs(C, 0.0);
    for_each_row(l, [&](std::int64_t c, std::int64_t off) {
        dd row{};
        double row_max = max_abs[c];
        for (std::int64_t k = 0; k < l.inner; ++k) {
            const double v = double(x[off + k]);
            row = add(row, v);
            if (std::abs(v) > row_max) row_max = std::abs(v); // NaN is skipped
        }
        s1[c] = add(s1[c], row);
        max_abs[c] = row_max;
    });

    // the exact mean of each finite channel: a dd sum loses values that cancel beyond ~2^-100
    // of the largest (1e200, −1e200, 1), which the corrected second pass cannot bring back
    std::vector<char> exact_mean(C, 0);
    std::vector<ScaledMean> mean_exact(C);
    std::vector<double> values;
    for (std::size_t c = 0; c < C; ++c) {
        values.clear();
        bool finite = true;
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t k = 0, at = (o * l.channels + std::int64_t(c)) * l.inner; k < l.inner; ++k) {
                const double v = double(x[at + k]);
                finite = finite && std::isfinite(v);
                values.push_back(v);
            }
        if (!finite) continue;
        mean_exact[c] = mean_exactly(values.data(), values.size()), exact_mean[c] = 1;
    }

    std::vector<ChannelStats> stats(C);
    bool overflowed = false;
    for (std::size_t c = 0; c < C; ++c) {
        ChannelStats& st = stats[c];
        if (max_abs[c] > 0 && std::isfinite(max_abs[c])) st.exponent = std::ilogb(max_abs[c]);
        st.scale = std::ldexp(1.0, -st.exponent);
        overflowed |= !exact_mean[c] && std::isinf(s1[c].hi) && std::isfinite(max_abs[c]);
        st.mean_scaled = exact_mean[c] ? mean_exact[c].scaled(st.exponent) : ldexp(div(s1[c], m), -st.exponent); // mean₀
        if (exact_mean[c]) st.exact_mean = mean_exact[c];
    }
    if (overflowed) { // Σ x left the double range (|x| near 1e308): sum again, scaled.
        std::vector<dd> s1_scaled(C);
        for_each_row(l, [&](std::int64_t c, std::int64_t off) {
            for (std::int64_t k = 0; k < l.inner; ++k)
                s1_scaled[c] = add(s1_scaled[c], double(x[off + k]) * stats[c].scale);
        });
        for (std::size_t c = 0; c < C; ++c)
            if (!exact_mean[c] && std::isinf(s1[c].hi)) stats[c].mean_scaled = div(s1_scaled[c], m);
    }

    // pass 2: d = (x − mean₀)·2^-e, S_d = Σ d, S_dd = Σ d², per channel (scaled).
    std::vector<dd> sd(C), sdd(C);
    for_each_row(l, [&](std::int64_t c, std::int64_t off) {
        const ChannelStats& st = stats[c];
        dd row_d{}, row_dd{};
        for (std::int64_t k = 0; k < l.inner; ++k) {
            const dd d = st.scaled_deviation(double(x[off + k]));
            row_d = add(row_d, d);
            row_dd = add(row_dd, mul(d, d));
        }
        sd[c] = add(sd[c], row_d);
        sdd[c] = add(sdd[c], row_dd);
    });

    for (std::size_t c = 0; c < C; ++c) {
        ChannelStats& st = stats[c];
        const dd shift = div(sd[c], m); // (mean − mean₀)·2^-e
        if (!exact_mean[c]) st.mean_scaled = add(st.mean_scaled, shift);
        // Σ (x − mean)² = S_dd − m·shift² = S_dd − S_d·shift   (all scaled by 4^-e)
        const dd ss = sub(sdd[c], mul(sd[c], shift));
        const dd var_scaled = div(ss, m); // biased variance · 4^-e
        const double eps_scaled = std::ldexp(eps, -2 * st.exponent);
        if (std::isinf(eps_scaled)) { // tiny data, eps dwarfs the variance: invstd = 1/sqrt(eps)
            st.invstd_scaled = ldexp(rsqrt(dd{eps, 0}), st.exponent);
            continue;
        }
        const dd var_eps = add(var_scaled, eps_scaled);
        if (var_eps.hi == 0 && eps == 0)
            throw InputError(fmt::format(
                "channel {} has zero variance and eps = 0: invstd = 1/sqrt(var + eps) is "
                "infinite (use eps > 0)",
                c));
        if (var_eps.hi == 0) { // constant, and 4^-e·eps underflowed: its deviations are 0 at
            st.mean_scaled = st.mean(); // any scale, so unscaled (2^e/sqrt(eps) may overflow)
            st.exponent = 0, st.scale = 1;
            st.invstd_scaled = rsqrt(dd{eps, 0});
            continue;
        }
        st.invstd_scaled = rsqrt(var_eps);
    }
    return stats;
}

} // namespace

template <class T>
void forward_exact(const T* x, const Layout& l, const T* gamma, const T* beta, double eps, T* y,
                   T* mean, T* invstd) {
    assert(l.channels >= 1 && l.per_channel() >= 2 && eps >= 0);
    const std::vector<ChannelStats> stats = channel_stats(x, l, eps);

    for (std::int64_t c = 0; c < l.channels; ++c) {
        if (mean) mean[c] = to<T>(stats[c].mean());
        if (invstd) invstd[c] = to<T>(stats[c].invstd());
    }

    // pass 3: y = γ·x̂ + β. y and x are (outer, C, inner).
    for_each_row(l, [&](std::int64_t c, std::int64_t off) {
        const double g = gamma ? double(gamma[c]) : 1.0;
        const double b = beta ? double(beta[c]) : 0.0;
        for (std::int64_t k = 0; k < l.inner; ++k) {
            const dd xhat = stats[c].normalized(double(x[off + k]));
            y[off + k] = to<T>(add(mul(xhat, g), b));
        }
    });
}

template <class T>
void backward_exact(const T* x, const T* gamma, const T* dy, const Layout& l, double eps, T* dx,
                    T* dgamma, T* dbeta, const char* skip) {
    assert(l.channels >= 1 && l.per_channel() >= 2 && eps >= 0);
    const auto C = static_cast<std::size_t>(l.channels);
    const double m = static_cast<double>(l.per_channel());

    // Each finite channel from its exact sums (ExactSet): dx to a few 2^-100 of itself,
    // even where it is a tiny fraction of its terms or exactly 0. The others (a value
    // not finite, or var + eps = 0) in double-double below, which propagates their NaN
    // or refuses them.
    std::vector<char> done(C, 0);
    std::vector<double> xc, gc;
    for (std::int64_t c = 0; c < l.channels; ++c) {
        if (skip && skip[c]) {
            done[std::size_t(c)] = 1;
            continue;
        }
        xc.clear(), gc.clear();
        for (std::int64_t o = 0; o < l.outer; ++o) {
            const std::int64_t off = (o * l.channels + c) * l.inner;
            xc.insert(xc.end(), x + off, x + off + l.inner), gc.insert(gc.end(), dy + off, dy + off + l.inner);
        }
        const ExactSet set(xc.data(), gc.data(), nullptr, xc.size(), eps, true);
        if (!set.usable()) continue;
        const double g = gamma ? double(gamma[c]) : 1.0;
        std::size_t i = 0;
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t k = 0, off = (o * l.channels + c) * l.inner; k < l.inner; ++k, ++i)
                dx[off + k] = set.zero() ? T(0 * g) : to<T>(mul(set.dx(i), g)); // (0·γ: a NaN γ propagates)
        if (dgamma) dgamma[c] = to<T>(set.sum_g_xhat());
        if (dbeta) dbeta[c] = to<T>(set.sum_g());
        done[std::size_t(c)] = 1;
    }
    if (std::all_of(done.begin(), done.end(), [](char d) { return d != 0; })) return;
    const std::vector<ChannelStats> stats = channel_stats(x, l, eps);

    // pass 3a: dβ = Σ dy and Σ dy·(x − mean)·2^-e, per channel
    // (dγ = invstd·Σ dy·(x − mean) = invstd_scaled·Σ dy·(x − mean)·2^-e).
    std::vector<dd> sum_dy(C), sum_dy_d(C);
    for_each_row(l, [&](std::int64_t c, std::int64_t off) {
        if (done[std::size_t(c)]) return;
        const ChannelStats& st = stats[c];
        dd row_dy{}, row_dy_d{};
        for (std::int64_t k = 0; k < l.inner; ++k) {
            const double g = double(dy[off + k]);
            row_dy = add(row_dy, g);
            row_dy_d = add(row_dy_d, mul(st.scaled_deviation(double(x[off + k])), g));
        }
        sum_dy[c] = add(sum_dy[c], row_dy);
        sum_dy_d[c] = add(sum_dy_d[c], row_dy_d);
    });

    // Per channel: dβ, dγ and the terms of dx = γ·invstd·(dy − dβ/m − x̂·dγ/m).
    struct Terms {
        dd dbeta_over_m;  // term 2: mean of dy
        dd dgamma_over_m; // term 3 factor: mean of dy·x̂
        dd scale;         // γ·invstd·2^e (the 2^-e is applied last, exactly)
    };
    std::vector<Terms> terms(C);
    for (std::size_t c = 0; c < C; ++c) {
        if (done[c]) continue;
        const dd dg = mul(sum_dy_d[c], stats[c].invstd_scaled);
        if (dbeta) dbeta[c] = to<T>(sum_dy[c]);
        if (dgamma) dgamma[c] = to<T>(dg);
        const double g = gamma ? double(gamma[c]) : 1.0;
        terms[c] = {div(sum_dy[c], m), div(dg, m), mul(stats[c].invstd_scaled, g)};
    }

    // pass 3b: dx. dx, dy and x are (outer, C, inner).
    for_each_row(l, [&](std::int64_t c, std::int64_t off) {
        if (done[std::size_t(c)]) return;
        const Terms& t = terms[c];
        const int e = stats[c].exponent;
        for (std::int64_t k = 0; k < l.inner; ++k) {
            const dd xhat = stats[c].normalized(double(x[off + k]));
            // term 1 − term 2 − term 3 = dy − dβ/m − x̂·dγ/m
            const dd inner_sum = sub(add(neg(t.dbeta_over_m), double(dy[off + k])),
                                             mul(xhat, t.dgamma_over_m));
            dx[off + k] = to<T>(ldexp(mul(inner_sum, t.scale), -e));
        }
    });
}

template void forward_exact<float>(const float*, const Layout&, const float*, const float*, double,
                                   float*, float*, float*);
template void forward_exact<double>(const double*, const Layout&, const double*, const double*,
                                    double, double*, double*, double*);
template void backward_exact<float>(const float*, const float*, const float*, const Layout&, double,
                                    float*, float*, float*, const char*);
template void backward_exact<double>(const double*, const double*, const double*, const Layout&,
                                     double, double*, double*, double*, const char*);

} // namespace bnorm::detail
