// Inference mode and running statistics: the passes' inference constructors (pass B alone
// with the running statistics as its coefficients; for backward, dγ and dβ from
// error-free sums), and the training pass's update of the running statistics from the
// batch moments pass A left (no second read of x).
#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"

#include "ddouble.hpp"
#include "formulas.hpp"
#include "lanes.hpp"
#include "parallel.hpp"
#include "pass_b/rows.hpp"
#include "pass_state.hpp"
#include "stats/expansion.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace bnorm {
namespace detail {
namespace {

using kernels::first_line, kernels::line_arrays, kernels::padded, kernels::threads_for;

/// Refuses a negative running variance, and (inference mode) running var + eps == 0,
/// naming the channel. NaN passes (it propagates).
template <class T> void check_running_var(const T* var, std::int64_t C, double eps, bool eval) {
    for (std::int64_t c = 0; c < C; ++c) {
        const double v = var[c];
        if (v < 0)
            throw InputError(fmt::format("channel {} has a negative running variance {}; a variance is >= 0", c, v));
        if (eval && v + eps == 0)
            throw InputError(fmt::format("channel {} has running variance 0 and eps = 0: 1/sqrt(running_var + eps) "
                                         "is infinite (use eps > 0)",
                                         c));
    }
}

/// 1/sqrt(var + eps) in double-double (var + eps exact by TwoSum); var + eps > 0, or
/// non-finite (then what 1/sqrt gives).
inline dd running_inverse_std(double var, double eps) { return rsqrt(two_sum(var, eps)); }

/// Channel c's value i of m (outer row i / inner, position i % inner).
template <class T> inline double value_at(const T* x, const Layout& l, std::int64_t whole, std::int64_t c,
                                          std::int64_t i) {
    const std::int64_t o = i / l.inner, k = i % l.inner;
    return double(x[(o * whole + c) * l.inner + k]);
}

/// The batch mean and M2/(m − correction) of channel c in double-double, in a scalar loop,
/// for the channels the fast kernels left to the exact kernel (non-finite data, float64
/// beyond [2^-400, 2^480]) and those whose M2 pass A did not certify against M2 itself:
/// the values scaled by a power of two near their largest magnitude, summed in
/// double-double, then the centred squares. A NaN gives NaN; an
/// infinity gives the plain mean and a NaN variance (as IEEE arithmetic would).
/// The scaled form: var = var_scaled·2^var_exp (var_exp = 0 where nothing was scaled), so
/// that a variance beyond double's range is still at hand.
template <class T> void exact_channel_moments(const T* x, const Layout& l, std::int64_t whole, std::int64_t c,
                                              int correction, dd& mean, dd& var_scaled, int& var_exp) {
    var_exp = 0;
    const std::int64_t m = l.per_channel();
    double largest = 0;
    bool finite = true;
    for (std::int64_t i = 0; i < m; ++i) {
        const double v = value_at(x, l, whole, c, i);
        if (!std::isfinite(v)) finite = false;
        else largest = std::max(largest, std::abs(v));
    }
    if (!finite) {
        double s = 0;
        for (std::int64_t i = 0; i < m; ++i) s += value_at(x, l, whole, c, i);
        mean = {s / double(m), 0}, var_scaled = {NAN, 0};
        return;
    }
    if (largest == 0) {
        mean = {0, 0}, var_scaled = {0, 0};
        return;
    }
    const int e = std::ilogb(largest);
    dd s{0, 0};
    for (std::int64_t i = 0; i < m; ++i) s = add(s, std::ldexp(value_at(x, l, whole, c, i), -e));
    const dd mean_scaled = div(s, double(m));
    dd q{0, 0};
    for (std::int64_t i = 0; i < m; ++i) {
        const dd d = sub(dd{std::ldexp(value_at(x, l, whole, c, i), -e), 0}, mean_scaled);
        q = add(q, mul(d, d));
    }
    mean = ldexp(mean_scaled, e);
    var_scaled = div(q, double(m - correction)), var_exp = 2 * e;
}

template <class T> void exact_channel_moments(const T* x, const Layout& l, std::int64_t whole, std::int64_t c,
                                              int correction, dd& mean, dd& var) {
    int e = 0;
    exact_channel_moments(x, l, whole, c, correction, mean, var, e);
    var = ldexp(var, e);
}

/// The new running mean (1 − M)·old + M·Σx/m of channel c, where they cancel: the
/// numerator m·(1 − M)·old + Σ M·x summed exactly (an expansion; every product split
/// exactly by TwoProd, after scaling all by one power of two so that none overflows),
/// then divided by m in double-double: right to ~2^-104 of itself however much the two
/// terms cancel. old and the data finite.
template <class T> dd exact_new_mean(const T* x, const Layout& l, std::int64_t whole, std::int64_t c, double old,
                                     double M) {
    const std::int64_t m = l.per_channel();
    double largest = std::abs(old);
    for (std::int64_t i = 0; i < m; ++i) largest = std::max(largest, std::abs(value_at(x, l, whole, c, i)));
    if (largest == 0) return {0, 0};
    const int e = std::ilogb(largest);
    std::vector<double> h;
    const auto put = [&](double a, double b) { // h += a·b
        const dd p = two_prod(a, b);
        expansion::grow_into(h, p.lo), expansion::grow_into(h, p.hi);
    };
    for (std::int64_t i = 0; i < m; ++i) put(M, std::ldexp(value_at(x, l, whole, c, i), -e));
    const dd keep = two_sum(1.0, -M);
    const double o = std::ldexp(old, -e), md = double(m);
    for (const double k : {keep.hi, keep.lo}) {
        const dd ko = two_prod(k, o); // m·(k·o), each part times m split again
        put(md, ko.hi), put(md, ko.lo);
    }
    dd t{0, 0};
    for (const double v : h) t = add(t, v); // smallest first
    return ldexp(div(t, md), e);
}

/// (1 − M)·old + M·var_scaled·2^var_exp in double-double, each term scaled by a power of
/// two near the larger one's magnitude, so that the result is finite wherever the exact
/// one is. old finite and >= 0.
inline dd scaled_update(double old, double M, dd var_scaled, int var_exp) {
    const dd keep = two_sum(1.0, -M);
    const dd t1 = mul(keep, old), t2 = mul(var_scaled, M);
    if (t2.hi == 0) return t1;
    const int e2 = std::ilogb(t2.hi) + var_exp;
    const int E = t1.hi == 0 ? e2 : std::max(std::ilogb(t1.hi), e2);
    const dd s = add(ldexp(t1, -E), ldexp(t2, var_exp - E));
    const dd r = ldexp(s, E);
    return std::isfinite(r.hi) ? r : dd{r.hi, 0}; // beyond double: the infinity
}

/// Where inference mode's pass B could overflow or underflow on the way (x − μ, γ·invstd,
/// var + eps): |μ| or |β| above 2^400, γ ≠ 0 or var + eps outside [2^-400, 2^400]. Finite
/// values only (the others propagate through pass B as IEEE arithmetic does).
inline bool eval_out_of_range(double rm, double g, double b, double v) {
    constexpr double hi = 0x1p400, lo = 0x1p-400;
    if (!std::isfinite(rm) || !std::isfinite(g) || !std::isfinite(b) || !std::isfinite(v)) return false;
    return std::abs(rm) > hi || std::abs(b) > hi || (g != 0 && (std::abs(g) > hi || std::abs(g) < lo)) || v > hi ||
           v < lo;
}

/// y = β + γ·(x − μ)/sqrt(v) (v = var + eps in double-double) for one value, every factor
/// scaled by a power of two near its magnitude (exact) before the double-double
/// operations, so that nothing overflows or underflows on the way: right to ~2^-104 of
/// |β| + |γ·(x − μ)/sqrt(v)|, and finite wherever the exact y is. Non-finite x: IEEE.
inline double eval_y_scaled(double x, double rm, double g, double b, dd v) {
    if (!std::isfinite(x)) return b + (g / std::sqrt(v.hi)) * (x - rm);
    const double big = std::max(std::abs(x), std::abs(rm));
    if (big == 0 || g == 0) return b;
    const int k1 = std::ilogb(big);
    const dd d = two_sum(std::ldexp(x, -k1), -std::ldexp(rm, -k1));
    if (d.hi == 0) return b;
    const int kv = std::ilogb(v.hi) & ~1; // even
    const dd r = rsqrt(ldexp(v, -kv));     // of a value in [1, 4)
    const int kg = std::ilogb(g);
    const dd p = mul(mul(r, std::ldexp(g, -kg)), d);
    const int ep = k1 + kg - kv / 2; // a·(x − μ) = p·2^ep
    const int E = b == 0 ? std::ilogb(p.hi) + ep : std::max(std::ilogb(b), std::ilogb(p.hi) + ep);
    const dd sum = add(ldexp(p, ep - E), std::ldexp(b, -E));
    const dd y = ldexp(sum, E);
    return std::isfinite(y.hi) ? y.hi + y.lo : y.hi;
}

/// Inference dγ = Σ dy·(x − rm)/sqrt(v) of channel c (v = var + eps in double-double)
/// with dy, x and rm, and v, scaled by powers of two first (exact), the sum error-free in
/// double-double, then scaled back: finite wherever the exact dγ is, right to ~2^-100 of
/// Σ|dy·(x − rm)|/sqrt(v). Nothing (nullopt) for non-finite data.
template <class T>
std::optional<double> eval_dgamma_scaled(const T* x, const T* dy, const Layout& l, std::int64_t whole,
                                         std::int64_t c, double rm, dd v) {
    const std::int64_t m = l.per_channel();
    double max_g = 0, max_x = std::abs(rm);
    for (std::int64_t i = 0; i < m; ++i) {
        const double g = value_at(dy, l, whole, c, i), xv = value_at(x, l, whole, c, i);
        if (!std::isfinite(g) || !std::isfinite(xv)) return std::nullopt;
        max_g = std::max(max_g, std::abs(g)), max_x = std::max(max_x, std::abs(xv));
    }
    if (max_g == 0 || max_x == 0 || !std::isfinite(v.hi) || !(v.hi > 0)) return std::nullopt;
    const int kg = std::ilogb(max_g), kx = std::ilogb(max_x);
    const double rms = std::ldexp(rm, -kx);
    dd sdd{0, 0};
    for (std::int64_t i = 0; i < m; ++i) {
        const double g = std::ldexp(value_at(dy, l, whole, c, i), -kg);
        const dd d = two_sum(std::ldexp(value_at(x, l, whole, c, i), -kx), -rms);
        dd p = two_prod(g, d.hi);
        p.lo += g * d.lo;
        sdd = add(sdd, p);
    }
    if (sdd.hi == 0) return 0.0;
    const int kv = std::ilogb(v.hi) & ~1; // even
    const dd r = rsqrt(ldexp(v, -kv));     // of a value in [1, 4)
    const dd s = mul(sdd, r);
    const int e = kg + kx - kv / 2;
    const int es = std::ilogb(s.hi);
    // 2^e·s in two steps, so that neither overflows before the end
    const dd y = ldexp(ldexp(s, -es), es + e);
    return std::isfinite(y.hi) ? y.hi + y.lo : y.hi;
}

} // namespace

template <class T>
ForwardState<T>::ForwardState(const T* x, const T* gamma, const T* beta, RunningStats<T> running, const Layout& l,
                              double eps, int threads)
    : x_(x), gamma_(gamma), beta_(beta), l_(l), whole_(l.channels), eps_(eps), threads_(threads_for(l, threads)) {
    assert(l.channels >= 1 && l.per_channel() >= 1 && eps >= 0);
    eval_ = true;
    const std::size_t C = std::size_t(l.channels);
    check_running_var(running.var, l.channels, eps, true);
    fast_.assign(C, 1);
    mean_.resize(C), invstd_.resize(C);
    // pass B's coefficients: μ = running mean (hi, lo = 0), a = γ·invstd (hi, lo), β, and
    // float32's test of β's cancellation (normalize_checked)
    const std::size_t P = padded(C);
    double *mu_hi = line_arrays(coefficients_, 6, C), *mu_lo = mu_hi + P, *a_hi = mu_lo + P, *a_lo = a_hi + P,
           *b = a_lo + P, *t = b + P;
    // four or eight channels at a time where every lane's var + eps is positive and finite
    // (the lanes' rsqrt needs it): the same operations lane by lane, so the same bits; one
    // at a time each channel waited on its division and square root (the tiny tensors' cost)
    const auto lanes_ok = [&](std::size_t c) {
        for (std::size_t j = c; j < c + std::size_t(detail::simd::kWidth); ++j)
            if (const double v = double(running.var[j]) + eps; !(v > 0 && std::isfinite(v))) return false;
        return true;
    };
    kernels::for_channel_lanes(C, lanes_ok, [&](std::size_t c, auto lanes_type) {
        using D = decltype(lanes_type);
        using kernels::lanes, kernels::put, kernels::values;
        const dd_of<D> inv = rsqrt(two_sum(lanes<D>(running.var, c), broadcast<D>(eps)));
        const dd_of<D> a = mul(inv, values<D>(gamma, c, 1.0));
        const D bc = values<D>(beta, c, 0.0);
        put(mu_hi, c, lanes<D>(running.mean, c)), put(mu_lo, c, D{});
        put(a_hi, c, a.hi), put(a_lo, c, a.lo), put(b, c, bc);
        put(t, c, kernels::cancel_threshold(bc));
        to_each(&invstd_[c], inv);
    });
    for (std::size_t c = 0; c < C; ++c) {
        mean_[c] = running.mean[c];
        if (eval_out_of_range(mu_hi[c], gamma ? double(gamma[c]) : 1.0, b[c], double(running.var[c]) + eps))
            fast_[c] = 0;
    }
    // the channels out of range: y by eval_y_scaled, now (apply copies them over pass B's)
    if (std::find(fast_.begin(), fast_.end(), 0) != fast_.end()) {
        exact_.assign(std::size_t(l.size()), T(0));
        for (std::size_t c = 0; c < C; ++c) {
            if (fast_[c]) continue;
            const dd v = two_sum(double(running.var[c]), eps);
            const double g = gamma ? double(gamma[c]) : 1.0;
            for (std::int64_t o = 0; o < l.outer; ++o)
                for (std::int64_t k = 0; k < l.inner; ++k) {
                    const std::int64_t i = (o * l.channels + std::int64_t(c)) * l.inner + k;
                    exact_[std::size_t(i)] = T(eval_y_scaled(double(x[i]), mu_hi[c], g, b[c], v));
                }
        }
    }
}

template <class T> void check_running_update(RunningStats<T> running, RunningUpdate u, const Layout& l, double eps) {
    if (!(u.momentum >= 0 && u.momentum <= 1))
        throw UsageError(fmt::format("momentum {} must be in [0, 1]", u.momentum));
    if (u.correction != 0 && u.correction != 1)
        throw UsageError(fmt::format("running variance correction {} must be 0 or 1", u.correction));
    const std::int64_t m = l.per_channel();
    if (m <= u.correction)
        throw InputError(fmt::format("m = {} values per channel: the unbiased variance needs at least 2", m));
    check_running_var(running.var, l.channels, eps, false);
}

template <class T>
void ForwardState<T>::update_running(RunningStats<T> running, RunningUpdate u, T* new_mean, T* new_var) const {
    if (eval_)
        throw UsageError("update_running: this pass is in inference mode; the running statistics are updated by "
                         "a training-mode pass");
    check_running_update(running, u, l_, eps_);
    const std::int64_t m = l_.per_channel();
    const std::size_t C = std::size_t(l_.channels);
    const std::size_t P = padded(C);
    const double *mu_hi = first_line(coefficients_), *mu_lo = mu_hi + P, *m2_hi = mu_hi + 5 * P, *m2_lo = m2_hi + P,
                 *m2_certified = m2_lo + P, *mu_error = m2_certified + P; // (forward_pass.cpp)
    const double M = u.momentum;
    const dd keep = two_sum(1.0, -M); // 1 − M, exact
    for (std::size_t c = 0; c < C; ++c) {
        dd mean, var;
        double mean_error = 0; // a bound on |μ − mean|, beside the double-double steps' 2^-100 of their size
        if (fast_[c] && m2_certified[c] != 0)
            mean = {mu_hi[c], mu_lo[c]}, var = div(dd{m2_hi[c], m2_lo[c]}, double(m - u.correction)),
            mean_error = mu_error[c];
        else // the exact kernel's channels, and M2 not certified against itself (eps dominating): again
            exact_channel_moments(x_, l_, whole_, std::int64_t(c), u.correction, mean, var);
        // new = (1 − M)·old + M·batch, in double-double, rounded once; with a non-finite
        // term, in double (as IEEE arithmetic propagates it; double-double's error terms
        // would turn an infinity into NaN)
        const auto update = [&](double old, dd batch) {
            if (M == 0 && !std::isnan(batch.hi)) return T(old); // the old value, exactly
            if (!std::isfinite(old) || !std::isfinite(batch.hi)) return T((1 - M) * old + M * batch.hi);
            return to<T>(add(mul(keep, old), mul(batch, M)));
        };
        if (new_mean) {
            const double old = double(running.mean[c]);
            const dd keep_old = mul(keep, old), batch = mul(mean, M);
            // (1 − M)·old and M·mean may cancel, which magnifies the batch mean's error
            // M·mean_error relative to the new mean. Where that could pass the mean's own
            // tolerance (2^-25 of it in float32, 2^-58 in float64), exactly, again: it
            // costs a pass over the channel, where the bound from pass A's certificate
            // spares it on all but the closest cancellations.
            constexpr double kTolerance = sizeof(T) == 4 ? 0x1p-25 : 0x1p-58;
            const double error =
                (M * (mean_error + 0x1p-100 * std::abs(mean.hi)) + 0x1p-100 * std::abs(keep_old.hi)) * (1 + 0x1p-50);
            if (M != 0 && std::isfinite(old) && std::isfinite(mean.hi) && old != 0 &&
                !(error <= kTolerance * (std::abs(add(keep_old, batch).hi) - 2 * error)))
                new_mean[c] = to<T>(exact_new_mean(x_, l_, whole_, std::int64_t(c), old, M));
            else
                new_mean[c] = update(old, mean);
        }
        if (new_var) {
            const double old = double(running.var[c]);
            if (M != 0 && std::isfinite(old) && !std::isfinite(var.hi) && !std::isnan(var.hi) &&
                std::isfinite(mean.hi)) {
                // the batch variance beyond double's range (the data finite): scaled
                dd mean2, var_scaled;
                int var_exp = 0;
                exact_channel_moments(x_, l_, whole_, std::int64_t(c), u.correction, mean2, var_scaled, var_exp);
                new_var[c] = std::isfinite(var_scaled.hi) ? to<T>(scaled_update(old, M, var_scaled, var_exp))
                                                          : update(old, var);
            } else
                new_var[c] = update(old, var);
        }
    }
}

template <class T>
BackwardState<T>::BackwardState(const T* x, const T* gamma, const T* dy, RunningStats<T> running, const Layout& l,
                                double eps, int threads)
    : x_(x), gamma_(gamma), dy_(dy), l_(l), whole_(l.channels), eps_(eps), threads_(threads_for(l, threads)) {
    assert(l.channels >= 1 && l.per_channel() >= 1 && eps >= 0);
    const std::size_t C = std::size_t(l.channels);
    zeros_.assign(C, T(0));
    // dx = a·dy: pass B of forward with x = dy, μ = 0 and β = 0 (checks the variances)
    eval_dx_ = std::make_unique<ForwardState<T>>(dy, gamma, nullptr, RunningStats<T>{zeros_.data(), running.var}, l,
                                                 eps, threads);
    fast_.assign(C, 1);
    dgamma_.resize(C), dbeta_.resize(C);
    // dβ = Σ dy and dγ = invstd·Σ dy·(x − running mean), error-free: x − rm = d + e
    // (TwoSum), dy·d = p + pe (TwoProd), accumulated in double-double, each channel in
    // order on one thread (the same bits for any thread count). They may cancel: the sums
    // keep ~2^-100 of Σ|dy·(x − rm)|, which the batch-centred sums of pass A would not
    // guarantee here.
    const std::int64_t m = l.per_channel();
    detail::parallel_for(l.channels, threads_, [&](std::int64_t c0, std::int64_t c1) {
        for (std::int64_t c = c0; c < c1; ++c) {
            const double rm = double(running.mean[c]);
            dd sdy{0, 0}, sdd{0, 0};
            double plain_dy = 0, plain_dd = 0; // for non-finite data, as IEEE arithmetic gives it
            double max_g = 0, max_d = 0;        // max |dy|, max |x − rm|: whether to scale (below)
            for (std::int64_t i = 0; i < m; ++i) {
                const double g = value_at(dy, l, whole_, c, i), xv = value_at(x, l, whole_, c, i);
                max_g = std::max(max_g, std::abs(g)), max_d = std::max(max_d, std::abs(xv - rm));
                sdy = add(sdy, g);
                const dd d = two_sum(xv, -rm);
                dd p = two_prod(g, d.hi);
                p.lo += g * d.lo;
                sdd = add(sdd, p);
                plain_dy += g, plain_dd += g * (xv - rm);
            }
            const dd inv = running_inverse_std(double(running.var[c]), eps);
            const dd dg = mul(sdd, inv);
            dbeta_[std::size_t(c)] = std::isfinite(plain_dy) ? to<T>(sdy) : T(plain_dy);
            dgamma_[std::size_t(c)] =
                std::isfinite(plain_dd) && std::isfinite(dg.hi) ? to<T>(dg) : T(plain_dd * inv.hi);
            // products or var + eps beyond double's range (x − rm overflowing, dy·(x − rm)
            // below 2^-900 or above 2^900, var + eps outside [2^-400, 2^400]): again, scaled
            const double v = two_sum(double(running.var[c]), eps).hi;
            if (max_g != 0 && max_d != 0 &&
                (!(max_d * max_g <= 0x1p900) || max_d * max_g < 0x1p-900 || !(v <= 0x1p400) || v < 0x1p-400 ||
                 !std::isfinite(dg.hi)))
                if (const auto scaled = eval_dgamma_scaled(x, dy, l, whole_, c, rm, two_sum(double(running.var[c]), eps)))
                    dgamma_[std::size_t(c)] = T(*scaled);
        }
    });
}

#define BNORM_RUNNING_STATE(T)                                                                                        \
    template ForwardState<T>::ForwardState(const T*, const T*, const T*, RunningStats<T>, const Layout&, double, int); \
    template void ForwardState<T>::update_running(RunningStats<T>, RunningUpdate, T*, T*) const;                     \
    template void check_running_update<T>(RunningStats<T>, RunningUpdate, const Layout&, double);                   \
    template BackwardState<T>::BackwardState(const T*, const T*, const T*, RunningStats<T>, const Layout&, double,     \
                                             int);
BNORM_RUNNING_STATE(float)
BNORM_RUNNING_STATE(double)
#undef BNORM_RUNNING_STATE

} // namespace detail

template <class T>
ForwardPass<T>::ForwardPass(const T* x, const T* gamma, const T* beta, RunningStats<T> running, const Layout& l,
                            double eps, int threads)
    : s_(std::make_unique<detail::ForwardState<T>>(x, gamma, beta, running, l, eps, threads)) {}

template <class T>
void ForwardPass<T>::update_running(RunningStats<T> running, RunningUpdate u, T* new_mean, T* new_var) const {
    s_->update_running(running, u, new_mean, new_var);
}

template <class T>
BackwardPass<T>::BackwardPass(const T* x, const T* gamma, const T* dy, RunningStats<T> running, const Layout& l,
                              double eps, int threads)
    : s_(std::make_unique<detail::BackwardState<T>>(x, gamma, dy, running, l, eps, threads)) {}

template <class T>
void forward_eval(const T* x, const T* gamma, const T* beta, RunningStats<T> running, const Layout& l, double eps,
                  T* y, int threads) {
    const ForwardPass<T> pass(x, gamma, beta, running, l, eps, threads);
    pass.apply(0, l.outer, y);
}

template <class T>
void backward_eval(const T* x, const T* gamma, const T* dy, RunningStats<T> running, const Layout& l, double eps,
                   T* dx, T* dgamma, T* dbeta, int threads) {
    const BackwardPass<T> pass(x, gamma, dy, running, l, eps, threads);
    pass.gradients(dgamma, dbeta);
    pass.apply(0, l.outer, dx);
}

#define BNORM_RUNNING(T)                                                                                              \
    template ForwardPass<T>::ForwardPass(const T*, const T*, const T*, RunningStats<T>, const Layout&, double, int); \
    template void ForwardPass<T>::update_running(RunningStats<T>, RunningUpdate, T*, T*) const;                     \
    template BackwardPass<T>::BackwardPass(const T*, const T*, const T*, RunningStats<T>, const Layout&, double,     \
                                           int);                                                                      \
    template void forward_eval<T>(const T*, const T*, const T*, RunningStats<T>, const Layout&, double, T*, int);    \
    template void backward_eval<T>(const T*, const T*, const T*, RunningStats<T>, const Layout&, double, T*, T*, T*, \
                                   int);
BNORM_RUNNING(float)
BNORM_RUNNING(double)
#undef BNORM_RUNNING

} // namespace bnorm
