// The arithmetic of gradcheck's numerical derivatives (bnorm/gradcheck.hpp): real and
// complex double-double numbers, and the forward pass of one set of statistics written
// once as a template over them, reduced to its share of f = Σ dy·y.
#pragma once

#include "ddouble.hpp"

#include <array>
#include <cstdint>

namespace bnorm::gradcheck_detail {

using detail::dd;

/// A real double-double number.
struct Real {
    dd v;
};
inline Real operator+(Real a, Real b) { return {detail::add(a.v, b.v)}; }
inline Real operator-(Real a, Real b) { return {detail::sub(a.v, b.v)}; }
inline Real operator*(Real a, Real b) { return {detail::mul(a.v, b.v)}; }
inline Real operator*(Real a, double b) { return {detail::mul(a.v, b)}; }
inline Real operator/(Real a, double b) { return {detail::div(a.v, b)}; }
inline Real operator+(Real a, double b) { return {detail::add(a.v, b)}; }
inline Real rsqrt(Real a) { return {detail::rsqrt(a.v)}; }

/// A complex number with K imaginary units, double-double parts: z = re + Σ_k im_k·i_k.
/// It runs the complex step along K directions in one pass, sharing the real part.
/// With steps of 2^-70 of the standard deviation, products of two imaginary parts are
/// O(h²) relative, below double-double resolution (2^-106), so they are not formed: for
/// K = 1 this is the ordinary complex product to working precision.
template <int K> struct Lanes {
    dd re;
    std::array<dd, K> im{};
};
template <int K> inline Lanes<K> operator+(const Lanes<K>& a, const Lanes<K>& b) {
    Lanes<K> r{detail::add(a.re, b.re)};
    for (int k = 0; k < K; ++k) r.im[k] = detail::add(a.im[k], b.im[k]);
    return r;
}
template <int K> inline Lanes<K> operator-(const Lanes<K>& a, const Lanes<K>& b) {
    Lanes<K> r{detail::sub(a.re, b.re)};
    for (int k = 0; k < K; ++k) r.im[k] = detail::sub(a.im[k], b.im[k]);
    return r;
}
template <int K> inline Lanes<K> operator*(const Lanes<K>& a, const Lanes<K>& b) {
    Lanes<K> r{detail::mul(a.re, b.re)};
    for (int k = 0; k < K; ++k) r.im[k] = detail::add(detail::mul(a.re, b.im[k]), detail::mul(a.im[k], b.re));
    return r;
}
template <int K> inline Lanes<K> operator*(const Lanes<K>& a, double b) {
    Lanes<K> r{detail::mul(a.re, b)};
    for (int k = 0; k < K; ++k) r.im[k] = detail::mul(a.im[k], b);
    return r;
}
template <int K> inline Lanes<K> operator/(const Lanes<K>& a, double b) {
    Lanes<K> r{detail::div(a.re, b)};
    for (int k = 0; k < K; ++k) r.im[k] = detail::div(a.im[k], b);
    return r;
}
template <int K> inline Lanes<K> operator+(const Lanes<K>& a, double b) {
    Lanes<K> r = a;
    r.re = detail::add(a.re, b);
    return r;
}
/// 1/sqrt(z) = a^-1/2·(1 − i·b/(2a) + O(b²)) for z = a + i·b, b tiny: the O(b²) term is
/// below double-double resolution here (see above).
template <int K> inline Lanes<K> rsqrt(const Lanes<K>& z) {
    const dd r = detail::rsqrt(z.re);
    const dd half_r3 = detail::mul(detail::mul(detail::mul(r, r), r), -0.5);
    Lanes<K> out{r};
    for (int k = 0; k < K; ++k) out.im[k] = detail::mul(half_r3, z.im[k]);
    return out;
}

/// The forward pass of one set of m elements, reduced to its share f_s = Σ dy·y of the
/// objective, in the arithmetic of S. Written once for every S and every norm, it is the
/// definition being differentiated:
///   centered (batch, instance, group, layer):
///     mean = Σ x / m (refined by a corrected second pass), var = Σ (x − mean)² / m
///     (the biased variance), invstd = 1/sqrt(var + eps), y = (x − mean)·(γ·invstd) + β;
///   not centered (rms): invstd = 1/sqrt(Σ x² / m + eps), y = x·(γ·invstd), no β.
/// x_of(i) gives the set's i-th value as an S; its parameters are gamma[param_of(i)] and
/// beta[param_of(i)] (γ·invstd is formed once per run of elements sharing a parameter).
/// term(i, t) is told each element's t = dy_i·y_i, the summands of f_s, in order.
template <class S, class XOf, class ParamOf, class Term>
S set_objective(std::int64_t m, bool centered, const XOf& x_of, const double* dy, const ParamOf& param_of,
                const S* gamma, const S* beta, double eps, const Term& term) {
    const double md = static_cast<double>(m);
    S mean{}, invstd{};
    if (centered) {
        S sum{};
        for (std::int64_t i = 0; i < m; ++i) sum = sum + x_of(i);
        const S mean0 = sum / md;
        S sd{}, sdd{};
        for (std::int64_t i = 0; i < m; ++i) {
            const S d = x_of(i) - mean0;
            sd = sd + d;
            sdd = sdd + d * d;
        }
        const S shift = sd / md;
        mean = mean0 + shift;
        const S var = (sdd - sd * shift) / md; // biased variance
        invstd = rsqrt(var + eps);
    } else {
        S sq{};
        for (std::int64_t i = 0; i < m; ++i) sq = sq + x_of(i) * x_of(i);
        invstd = rsqrt(sq / md + eps); // the mean square: nothing subtracted
    }
    S f{}, gamma_invstd{};
    std::int64_t q_prev = -1;
    for (std::int64_t i = 0; i < m; ++i) {
        const std::int64_t q = param_of(i);
        if (q != q_prev) gamma_invstd = gamma[q] * invstd, q_prev = q;
        const S y = centered ? (x_of(i) - mean) * gamma_invstd + beta[q] : x_of(i) * gamma_invstd;
        const S t = y * dy[i];
        term(i, t);
        f = f + t;
    }
    return f;
}

/// Batch norm's inference-mode forward of one channel (parameters gamma[0], beta[0]),
/// reduced to f_c = Σ dy·y with the running statistics as constants:
/// y = (x − rm)·(γ/sqrt(rv + eps)) + β.
template <class S, class XOf, class Term>
S channel_objective_eval(std::int64_t m, const XOf& x_of, const double* dy, const S* gamma, const S* beta,
                         double rm, double rv, double eps, const Term& term) {
    const S gamma_invstd = gamma[0] * rsqrt(S{{rv, 0}} + eps);
    S f{};
    for (std::int64_t i = 0; i < m; ++i) {
        const S t = ((x_of(i) - S{{rm, 0}}) * gamma_invstd + beta[0]) * dy[i];
        term(i, t);
        f = f + t;
    }
    return f;
}

} // namespace bnorm::gradcheck_detail
