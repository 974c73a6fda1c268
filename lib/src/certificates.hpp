// The certificates: bounds on what the rounding of pass A's fast sums can do to each
// output, which decide channel by channel whether those sums are good enough.
#pragma once

#include "ddouble.hpp"
#include "lanes.hpp"
#include "stats/moments.hpp"
#include "stats/summation.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace bnorm::kernels {

/// Which sums a channel's outputs come from: the first stage of pass A whose certificate
/// it passed.
enum class Certified : char {
    fast,    // the fast sums (float32: plain, or biased when the plain ones were not enough)
    careful, // float32 backward: biased sums, certified for the double-double pass B only
    exact,   // summed again error-free
};

namespace { // each .cpp its own copy, optimised with its callers as one unit

// ---- certificates: are a channel's fast sums good enough? ------------------------------------
//
// Bounds on what the rounding of the fast sums (rel per sum: γ for plain sums, biased_rel
// for biased ones, doubled to cover the double-double merges and the bounds' own rounding)
// can do to each output, using Cauchy–Schwarz: Σ|x − K| ≤ √(n·Σ(x − K)²), Σ|dy| ≤
// √(n·Σdy²), Σ|dy·(x − K)| ≤ √(Σdy²·Σ(x − K)²). A channel is certified when every
// output's share is small against the channel's own outputs (stricter than the normwise
// promise): for float32, 2^-28 for y, invstd and dx, and 2^-25 (1/4 eps) for the
// one-number outputs mean, dβ and dγ, which are only rounded once after; for float64,
// 2^-61 and 2^-58 (Tolerance below). A channel that is not certified is summed again with
// the error-free kernels, alone or in one pass with the others: its bits come from its
// own data only either way.

constexpr double kUnit = 0x1p-53; // double's unit roundoff
constexpr double kMaxMagnitude = 0x1p480, kMinMagnitude = 0x1p-400; // fast-path range (float64)

/// γ(k) = k·u/(1 − k·u): the relative bound of k roundings.
constexpr double gamma_of(std::int64_t k) { return double(k) * 0x1p-53 / (1 - double(k) * 0x1p-53); }
constexpr double kPlainGamma = gamma_of(kPlainRun + 2 * detail::simd::kWidth + 2);

/// The relative bound of a block's biased sums: a channel's sum of terms v is off by at
/// most biased_rel(T, tile)·Σ|v| (and Σ dy·x by that times √(Σx²·Σdy²)) after T folds of
/// tiles into the compensated block sums (docs/derivation.md). With E = N(10N + 1) (the
/// error terms of an accumulator add up to at most E·u·V) and S accumulators sharing V:
/// 2T² from the compensation (Ogita, Rump & Oishi, Sum2), 2S·E·T from adding the tiles'
/// error sums, S·N·E from the tiles themselves; each with a margin for the bound's own
/// roundings.
template <class D> D biased_rel(D T, BiasedShape tile) {
    const double N = tile.terms, S = tile.sharing, E = N * (10 * N + 1);
    return (2.0 * T * T + 1.05 * 2 * S * E * T + 1.15 * S * N * E) * 0x1p-106;
}

/// The relative bound of Σdy² from the kernels of `How`, over whole rows (`rows`) or runs:
/// the plain and the biased kernels add dy² plainly, a plain run or a biased tile's terms
/// at a time, and fold that into a compensated sum.
constexpr double dy_squares_rel(Summation how, bool rows) {
    return how == Summation::plain    ? kPlainGamma
           : how != Summation::exact  ? gamma_of((rows ? kRowTile : kRunTile).terms + 2)
                                      : 0.0;
}

/// What a certificate asks of a channel's sums: each output's share of their errors within
/// `output` of the channel's outputs (`scalar` for mean, dβ and dγ), with pass B's own
/// rounding at `pass_b` relative, and `offset_form` when pass B may take the offset form
/// (input_gradient_offset_dd), whose bound also has |μ·H|.
struct Tolerance {
    double output, scalar, pass_b;
    bool offset_form;
};
/// float32 outputs from plain sums, and pass B in double.
constexpr Tolerance kFloat32Tolerance{0x1p-28, 0x1p-25, kUnit, false};
/// The same outputs with pass B in double-double (the centred form's 8u², or the offset
/// form's where |μ| ≤ 4σ), for float32 channels whose dx is a tiny fraction of its terms.
constexpr Tolerance kFloat32CarefulTolerance{0x1p-28, 0x1p-25, 0x1p-104, true};
/// float64 outputs from biased sums (2^-8 and 2^-5 of an ulp), and pass B in
/// double-double (its error terms are kept, to a few 2^-106).
constexpr Tolerance kFloat64Tolerance{0x1p-61, 0x1p-58, 0x1p-104, true};

/// Bounds on the errors of the merged plain sums of a channel (four for v4d).
template <class D> struct PlainErrors {
    D g;       // the per-sum relative bound, doubled
    D mean;    // |μ − computed μ|
    D m2;      // M2 = Σ(x − μ)²
    D sum_dy;  // Σ dy
    D sum_dyd; // Σ dy·(x − μ)
};

template <class D> PlainErrors<D> plain_errors(const MomentsOf<D>& m) {
    using detail::simd::sqrt;
    const D g = 2.0 * m.rel;
    return {g, g * sqrt(m.sq / m.n), 6.0 * g * m.sq, g * sqrt(m.n * m.dy_sq.hi), 5.0 * g * sqrt(m.sq * m.dy_sq.hi)};
}

/// Whether a channel's mean and invstd (and so y) from plain sums are within the bound.
template <class D> mask_of<D> forward_certified(const MomentsOf<D>& m, double eps, const Tolerance& tol) {
    const PlainErrors<D> e = plain_errors(m);
    const D sd = detail::simd::sqrt(m.m2.hi / m.n);
    return either<mask_of<D>>(m.rel == 0.0, // error-free sums
                              every<mask_of<D>>(e.mean <= tol.scalar * magnitude(m.mean.hi), e.mean <= tol.output * sd,
                                                e.m2 <= tol.output * (m.m2.hi + m.n * eps)));
}

/// Whether a channel's dβ, dγ and dx from plain sums are within the bound. dx = a·t with
/// t = dy − B − (x − μ)·H: the bound on t's error must be small against max|t|, which is
/// at least the root mean square of t, computed from the sums (with its own error bound,
/// where Σdy² is off by at most dy_rel relative: dy_squares_rel).
template <class D>
mask_of<D> backward_certified(const MomentsOf<D>& m, double eps, const Tolerance& tol, double dy_rel) {
    using detail::simd::sqrt;
    const PlainErrors<D> e = plain_errors(m);
    const D n = m.n, M2 = m.m2.hi, S1 = m.sum_dy.hi, Sd = m.sum_dyd.hi;
    const D var_eps = M2 / n + eps, r2 = 1.0 / var_eps;
    const D rel_r = 0.5 * (e.m2 / n) / var_eps; // invstd's relative error
    const D B = S1 / n, H = r2 * Sd / n;
    const D dH = 2.0 * rel_r * magnitude(H) + r2 * e.sum_dyd / n;
    // the largest |x − μ| and |dy|: Cauchy–Schwarz's √M2 and √Σdy², or (far smaller for
    // many rows) from the largest magnitudes, where the kernels kept them
    const D zero{}, cs_d = sqrt(M2) + e.mean, cs_g = sqrt(m.dy_sq.hi);
    const D kept_d = (m.max_abs + magnitude(m.mean.hi)) * (1 + 0x1p-50) + e.mean;
    const D max_d = (zero < m.max_abs) & (kept_d < cs_d) ? kept_d : cs_d;
    const D max_g = (zero < m.dy_max_abs) & (m.dy_max_abs < cs_g) ? m.dy_max_abs : cs_g;
    // pass B: 8u²·(|dy| + |B| + |H|·|x − μ|) centred; the offset form 10u²·(the same) + 24u²·|μ·H|
    const double centred = tol.offset_form ? 2.5 : 2.0, offset = tol.offset_form ? 6.0 : 0.0;
    const D delta = e.sum_dy / n + dH * max_d + magnitude(H) * (e.mean + tol.pass_b * magnitude(m.mean.hi)) +
                    centred * tol.pass_b * (max_g + magnitude(B) + magnitude(H) * max_d) +
                    offset * tol.pass_b * magnitude(H) * magnitude(m.mean.hi);
    // Σ t² = Σdy² − S1²/n − 2·H·Sd + H²·M2
    const D t1 = m.dy_sq.hi, t2 = S1 * S1 / n, t3 = 2.0 * H * Sd, t4 = H * H * M2;
    const D sum_t2 = t1 - t2 - t3 + t4;
    const D err_t2 = 4.0 * dy_rel * t1 + 2.0 * magnitude(S1) * e.sum_dy / n +
                     2.0 * (magnitude(H) * e.sum_dyd + magnitude(Sd) * dH) + 2.0 * magnitude(H) * dH * M2 +
                     H * H * e.m2 + 8.0 * kUnit * (t1 + t2 + magnitude(t3) + t4);
    const D left = sum_t2 - err_t2;
    const D rms_t = sqrt((zero < left ? left : zero) / n); // std::max(0, left)
    return either<mask_of<D>>(m.rel == 0.0, // error-free sums
                              every<mask_of<D>>(rel_r <= tol.output, e.sum_dy <= tol.scalar * magnitude(S1),
                                                e.sum_dyd <= tol.scalar * magnitude(Sd), delta <= tol.output * rms_t));
}

/// For a channel summed error-free (which the certificates pass): is pass B's own
/// rounding (double-double, ~2^-104 of |dy|, |B| and |H|·(|x − μ| + |μ|)) within
/// tol.output of dx (2^-61 for float64, 2^-28 for float32)? dx can be a tiny fraction of
/// those terms (dy nearly linear in x, offset data), or 0 (float32 dy = x, eps = 0).
/// dx's size comes from Σt² = Σdy² − (Σdy)²/n − 2H·Σdy·(x − μ) + H²·M2 (t = dx/a), in
/// double-double since its terms cancel down to dx's size, less a bound on its error:
/// the error-free sums' worst case (n·u)² and the double-double steps, relative to the
/// terms. Channels that fail take the exact kernel.
[[maybe_unused]] bool pass_b_enough(const MomentsOf<double>& m, double eps, const Tolerance& tol) {
    using namespace detail;
    const double n = m.n;
    const dd var_eps = add(div(m.m2, n), eps);
    if (!(var_eps.hi > 0) || !std::isfinite(var_eps.hi)) return true; // refused or exact elsewhere
    const dd inv = rsqrt(var_eps);
    const dd H = div(mul(mul(m.sum_dyd, inv), inv), n), B = div(m.sum_dy, n);
    const dd t1 = m.dy_sq, t2 = div(mul(m.sum_dy, m.sum_dy), n), t3 = mul(mul(H, m.sum_dyd), 2.0),
             t4 = mul(mul(H, H), m.m2);
    const double sum_t2 = add(sub(sub(t1, t2), t3), t4).hi;
    const double terms = t1.hi + t2.hi + std::abs(t3.hi) + t4.hi;
    const double err_t2 = (0x1p-98 + 2 * (n * kUnit) * (n * kUnit)) * terms;
    const double rms_t = std::sqrt(std::max(0.0, sum_t2 - err_t2) / n);
    const double mu = std::abs(m.mean.hi), h = std::abs(H.hi); // the largest |x − μ|, as in backward_certified:
    const double max_d = std::min(std::sqrt(m.m2.hi), (m.max_abs + mu) * (1 + 0x1p-50));
    // as in backward_certified: the centred form's bound, the offset form's (which has 6
    // more |μ·H|) where it may be taken
    const double centred = tol.offset_form ? 2.5 : 2.0, offset = tol.offset_form ? 7.0 : 1.0;
    const double pass_b =
        centred * tol.pass_b * (m.dy_max_abs + std::abs(B.hi) + h * max_d) + offset * tol.pass_b * h * mu;
    return pass_b <= tol.output * rms_t;
}


/// Does channel m's certificate of `tol` pass (backward's or forward's), for sums whose
/// Σdy² is off by at most dy_rel relative?
template <bool Backward, class D>
mask_of<D> certified(const MomentsOf<D>& m, double eps, const Tolerance& tol, double dy_rel) {
    if constexpr (Backward) return backward_certified(m, eps, tol, dy_rel);
    else return forward_certified(m, eps, tol);
}

/// Per channel: true when the fast path's double arithmetic cannot overflow, underflow
/// or meet a non-finite value for its data; the other channels are computed by the exact
/// kernel, so that a channel's outputs depend on its own data only.
[[maybe_unused]] std::vector<char> in_fast_range(const MomentsVector& ms, bool is_double) {
    auto ok = [&](double a) { return a == 0 || !is_double || (a >= kMinMagnitude && a <= kMaxMagnitude); };
    std::vector<char> fast(ms.size(), 1);
    for (std::size_t c = 0; c < ms.size(); ++c) {
        const Moments& m = ms[c];
        for (double v : {m.mean.hi, m.m2.hi, m.max_abs, m.sum_dy.hi, m.sum_dyd.hi, m.dy_max_abs})
            if (!std::isfinite(v)) fast[c] = 0;
        if (!ok(m.max_abs) || !ok(m.dy_max_abs)) fast[c] = 0;
    }
    return fast;
}

/// Whether every channel is in the fast range.
[[maybe_unused]] bool all_fast(const std::vector<char>& fast) {
    return std::all_of(fast.begin(), fast.end(), [](char f) { return f != 0; });
}

} // namespace
} // namespace bnorm::kernels
