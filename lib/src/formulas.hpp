// The formulas of the outputs from a channel's coefficients: invstd, y (normalize_*) and
// dx (input_gradient_*), on doubles or lane by lane on vectors with the same operations.
#pragma once

#include "bnorm/error.hpp"
#include "ddouble.hpp"
#include "lanes.hpp"
#include "stats/moments.hpp"
#include <fmt/format.h>
#include <cmath>
#include <cstddef>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

/// invstd = 1/sqrt(M2/m + eps) of channel c (c..c+3 for v4d), whose data is in the fast
/// range; throws for var + eps == 0.
template <class D> dd_of<D> inverse_std(const MomentsOf<D>& m, double eps, std::size_t c) {
    const dd_of<D> var_eps = detail::add(detail::div(m.m2, m.n), detail::broadcast<D>(eps));
    bool finite = true;
    for (int j = 0; j < kLanesOf<D>; ++j) {
        const double v = lane(var_eps.hi, j);
        if (!(v > 0))
            throw InputError(fmt::format("channel {} has zero variance and eps = 0: invstd = 1/sqrt(var + eps) is "
                                         "infinite (use eps > 0)",
                                         c + std::size_t(j)));
        finite = finite && std::isfinite(v);
    }
    if constexpr (std::is_same_v<D, double>) return detail::rsqrt(var_eps);
    else {
        if (finite) return detail::rsqrt(var_eps); // the lanes' operations need a positive finite x
        dd_of<D> r;
        for (int j = 0; j < kLanesOf<D>; ++j) {
            const dd one = detail::rsqrt(dd{var_eps.hi[j], var_eps.lo[j]});
            r.hi[j] = one.hi, r.lo[j] = one.lo;
        }
        return r;
    }
}

/// y = a·((x − μh) − μl) + β in double, for float32 outputs (double's 2^-53 is far below
/// float32's half ulp).
template <class D> inline D normalize_plain(D x, D mh, D ml, D ah, D b) { return fused(ah, D(D(x - mh) - ml), b); }

/// dx = a·((dy − B) − (x − μ)·H) in double, for float32 outputs from certified plain sums.
template <class D> inline D input_gradient_plain(D x, D g, D mh, D ah, D Bh, D Hh) {
    const D d = x - mh, w = g - Bh;
    return D(ah * fused(-d, Hh, w));
}

/// y = β + a·(x − μ), with μ = mh + ml and a = ah + al in double-double: x − μ = s + e
/// exactly (TwoSum), the main product-sum rounded once and the small terms added to it.
/// On doubles, or lane by lane on v4d with the same operations.
template <class D> inline D normalize_dd(D x, D mh, D ml, D ah, D al, D b) {
    const D s = x - mh;
    const D bb = s - x;
    const D e = ((x - (s - bb)) + (-mh - bb)) - ml;
    return fused(ah, s, b) + (ah * e + al * s);
}

/// normalize_checked's plain form, for callers that test several vectors behind one branch.
template <class D> inline D normalize_unchecked(D x, D mh, D ah, D b) { return fused(ah, D(x - mh), b); }

/// normalize_checked's answer for a vector whose test failed in some lane: per lane, the
/// plain form v where |v| ≥ t, else double-double (NaN: normalize_dd's).
template <class D> inline D normalize_rechecked(D v, D x, D mh, D ah, D al, D b, D t) {
    using detail::simd::abs, detail::simd::at_least_or;
    return at_least_or(abs(v), t, v, normalize_dd(x, mh, D{}, ah, al, b));
}

/// y = β + a·(x − μ) for float32 outputs where β may cancel a·(x − μ) (inference mode):
/// the plain double form v where its error, at most ~2^-51·(|a·(x − μ)| + |y|), is
/// provably below 2^-30·|y| (then rounding it to float32 rounds y), else normalize_dd.
/// The test is |v| ≥ t, t = cancel_threshold(β) per channel: then |a·(x − μ)| ≤
/// (1 + 3u)·|v| + (1 + 2u)·|β| ≤ 2^20·|v|, with two operations where comparing |v| with
/// |a·(x − μ)| took five. Each lane's form depends on its own test only, so the bits do
/// not depend on the width of D; normalize_dd runs only for vectors with a lane that fails.
/// μ is one double (the running mean, a T value: no low part).
template <class D> inline D normalize_checked(D x, D mh, D ah, D al, D b, D t) {
    using detail::simd::abs, detail::simd::all_at_least;
    const D v = normalize_unchecked(x, mh, ah, b);
    if (all_at_least(abs(v), t)) return v;
    return normalize_rechecked(v, x, mh, ah, al, b, t);
}

/// normalize_checked's t for a channel's β: 2^-19·|β| (exact, or below float32's range);
/// on doubles, or lane by lane.
template <class D> inline D cancel_threshold(D b) { return D(detail::simd::abs(b) * 0x1p-19); }

/// dx = a·(dy − B − (x − μ)·H): d = x − μ = s + e (TwoSum), t = d·H = ph + pl (TwoProd),
/// w = dy − B = wh + wl, inner = w − t = ih + il; every step keeps its error term, so the
/// three terms may cancel to 2^-100 of their size and dx is still right. On doubles, or
/// lane by lane on v4d with the same operations.
template <class D> inline D input_gradient_dd(D x, D g, D mh, D ml, D ah, D al, D Bh, D Bl, D Hh, D Hl) {
    const D s = x - mh;
    const D sb = s - x;
    const D e = ((x - (s - sb)) + (-mh - sb)) - ml;
    const D ph = s * Hh;
    const D pl = fused(s, Hh, -ph) + (s * Hl + e * Hh);
    const D wh = g - Bh;
    const D wb = wh - g;
    const D wl = ((g - (wh - wb)) + (-Bh - wb)) - Bl;
    const D ih = wh - ph;
    const D ib = ih - wh;
    const D il = ((wh - (ih - ib)) + (-ph - ib)) + (wl - pl);
    return fused(ah, ih, ah * il + al * ih);
}

/// Where float64 dx takes the offset form below: |μ| ≤ kOffsetFormSpread·σ.
constexpr double kOffsetFormSpread = 4;

/// The same dx as input_gradient_dd, from the offset form dx = a·(dy − K − x·H) with
/// K = B − μ·H (double-double, per channel): x·H = ph + pe exactly (TwoProd), dy − Kh =
/// wh + wl and wh − ph = ih + il (TwoSum), and the small terms il, wl, pe, x·Hl and Kl
/// added plainly: 22 operations instead of 34, and a shorter chain. Its error bound has
/// |K| and |x·H| where the centred form has |B| and |(x − μ)·H|, which gain |μ·H|: so it
/// is used where |μ| ≤ 4σ, where that costs at most a few bits of the ~2^-104
/// (docs/derivation.md).
template <class D> inline D input_gradient_offset_dd(D x, D g, D ah, D al, D Kh, D Kl, D Hh, D Hl) {
    const D ph = x * Hh;
    const D pe = fused(x, Hh, -ph);
    const D wh = g - Kh;
    const D wb = wh - g;
    const D wl = (g - (wh - wb)) + (-Kh - wb);
    const D ih = wh - ph;
    const D ib = ih - wh;
    const D il = (wh - (ih - ib)) + (-ph - ib);
    const D rest = ((il + wl) - fused(x, Hl, pe)) - Kl;
    return fused(ah, ih, fused(al, ih, ah * rest));
}

} // namespace
} // namespace bnorm::kernels
