// Double-double arithmetic: a value is the unevaluated sum hi + lo with |lo| <= ulp(hi)/2,
// about 106 bits of significand. Internal to the library.
//
// The building blocks are the error-free transformations
//   two_sum(a, b):  a + b = s + e exactly            (Knuth, 6 flops, no branch)
//   two_prod(a, b): a * b = p + e exactly            (one FMA)
// and the algorithms are those of Joldes, Muller & Popescu, "Tight and rigorous error
// bounds for basic building blocks of double-word arithmetic" (ACM TOMS 2017), whose
// relative error bounds are a few units of 2^-106.
//
// Every function is written once for D = double and for D = simd::v4d, four independent
// values lane by lane with the same operations, so a lane gets the same bits as the
// double alone (the per-channel set-up runs four channels at a time this way).
//
// This needs IEEE double arithmetic evaluated as written: the build uses
// -ffp-contract=off and never -ffast-math.
//
// The small functions are always inlined: otherwise GCC may call them out of line in the
// per-channel set-up, the tiny tensors' cost.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "simd.hpp"

namespace bnorm::detail {

template <class D> struct dd_of {
    D hi{};
    D lo{};
};
using dd = dd_of<double>;

/// v in every lane, exactly (−0 stays −0).
template <class D> inline D broadcast(double v) {
    if constexpr (std::is_same_v<D, double>) return v;
    else if constexpr (std::is_same_v<D, simd::v8d>) return D{v, v, v, v, v, v, v, v};
    else return simd::splat(v);
}

/// a·b + c rounded once.
inline double fused(double a, double b, double c) { return std::fma(a, b, c); }
inline simd::v4d fused(simd::v4d a, simd::v4d b, simd::v4d c) { return simd::fma(a, b, c); }
inline simd::v8d fused(simd::v8d a, simd::v8d b, simd::v8d c) { return simd::fma(a, b, c); }

template <class D> [[gnu::always_inline]] inline dd_of<D> two_sum(D a, D b) {
    const D s = a + b;
    const D bb = s - a;
    const D e = (a - (s - bb)) + (b - bb);
    return {s, e};
}

/// Requires |a| >= |b| (or a == 0).
template <class D> [[gnu::always_inline]] inline dd_of<D> fast_two_sum(D a, D b) {
    const D s = a + b;
    const D e = b - (s - a);
    return {s, e};
}

template <class D> [[gnu::always_inline]] inline dd_of<D> two_prod(D a, D b) {
    const D p = a * b;
    return {p, fused(a, b, D(-p))};
}

/// dd + double (JMP Algorithm 4, error <= 2u^2).
template <class D> [[gnu::always_inline]] inline dd_of<D> add(dd_of<D> x, D y) {
    dd_of<D> s = two_sum(x.hi, y);
    return fast_two_sum(s.hi, D(s.lo + x.lo));
}

/// dd + dd (JMP Algorithm 6, "accurate", error <= 3u^2).
template <class D> [[gnu::always_inline]] inline dd_of<D> add(dd_of<D> x, dd_of<D> y) {
    dd_of<D> s = two_sum(x.hi, y.hi);
    dd_of<D> t = two_sum(x.lo, y.lo);
    s = fast_two_sum(s.hi, D(s.lo + t.hi));
    return fast_two_sum(s.hi, D(s.lo + t.lo));
}

template <class D> [[gnu::always_inline]] inline dd_of<D> neg(dd_of<D> x) { return {-x.hi, -x.lo}; }
template <class D> [[gnu::always_inline]] inline dd_of<D> sub(dd_of<D> x, dd_of<D> y) { return add(x, neg(y)); }

/// dd * double (JMP Algorithm 9, error <= 2u^2).
template <class D> [[gnu::always_inline]] inline dd_of<D> mul(dd_of<D> x, D y) {
    dd_of<D> c = two_prod(x.hi, y);
    return fast_two_sum(c.hi, fused(x.lo, y, c.lo));
}

/// dd * dd (JMP Algorithm 12, error <= 5u^2).
template <class D> [[gnu::always_inline]] inline dd_of<D> mul(dd_of<D> x, dd_of<D> y) {
    dd_of<D> c = two_prod(x.hi, y.hi);
    D t = x.hi * y.lo;
    t = fused(x.lo, y.hi, t);
    return fast_two_sum(c.hi, D(c.lo + t));
}

/// dd / double (JMP Algorithm 15, error <= 3u^2).
template <class D> [[gnu::always_inline]] inline dd_of<D> div(dd_of<D> x, D y) {
    const D th = x.hi / y;
    dd_of<D> p = two_prod(th, y);
    const D dh = x.hi - p.hi;
    const D dl = x.lo - p.lo;
    const D tl = (dh + dl) / y;
    return fast_two_sum(th, tl);
}

/// x·2^k, exact unless the result leaves the normal range.
inline dd ldexp(dd x, int k) { return {std::ldexp(x.hi, k), std::ldexp(x.lo, k)}; }

/// 2^e for e in [-1022, 1023], from its bits (std::ldexp is a libm call).
inline double pow2(int e) { return std::bit_cast<double>(std::uint64_t(e + 1023) << 52); }

/// 1/sqrt(x) for x > 0: one Newton step r' = r + r(1 − x r²)/2 from the double
/// estimate, evaluated in dd, doubles the ~53 correct bits. x is first scaled by an even
/// power of two 2^(-2k) from its exponent, into [1/2, 4) (normal x) or [2^-52, 1/2)
/// (subnormal x, k = -511), so that r² cannot overflow or underflow; the scalings are
/// products with powers of two, exact here. `down` = 2^(-2k) and `up` = 2^-k.
template <class D> inline dd_of<D> rsqrt_scaled(dd_of<D> x, D down, D up) {
    const dd_of<D> xs{x.hi * down, x.lo * down};
    const D r = 1.0 / simd::sqrt(xs.hi);
    const dd_of<D> r2 = two_prod(r, r);
    const dd_of<D> e = add(dd_of<D>{broadcast<D>(1.0), D{}}, neg(mul(xs, r2))); // 1 − x r², tiny
    const dd_of<D> root = add(dd_of<D>{r, D{}}, mul(e, D(0.5 * r)));
    return {root.hi * up, root.lo * up};
}

/// rsqrt_scaled for one x. Zero, negative, infinite and NaN x give what 1/sqrt(x.hi) gives.
inline dd rsqrt(dd x) {
    if (!(x.hi > 0) || !std::isfinite(x.hi)) return {1.0 / std::sqrt(x.hi), 0.0};
    const int biased = int(std::bit_cast<std::uint64_t>(x.hi) >> 52); // x.hi > 0: no sign bit
    const int k = (biased - 1023) / 2;                               // in [-511, 511]
    return rsqrt_scaled(x, pow2(-2 * k), pow2(-k));
}

/// rsqrt for four lanes, every x.hi positive and finite (the caller checks): the same
/// operations as for one.
inline dd_of<simd::v4d> rsqrt(dd_of<simd::v4d> x) {
    using v4l = long long __attribute__((vector_size(32)));
    const v4l biased = (v4l)x.hi >> 52;
    const v4l k = (biased - 1023) / 2;
    return rsqrt_scaled(x, (simd::v4d)((1023 - 2 * k) << 52), (simd::v4d)((1023 - k) << 52));
}

/// The same for eight lanes.
inline dd_of<simd::v8d> rsqrt(dd_of<simd::v8d> x) {
    using v8l = long long __attribute__((vector_size(64)));
    const v8l biased = (v8l)x.hi >> 52;
    const v8l k = (biased - 1023) / 2;
    return rsqrt_scaled(x, (simd::v8d)((1023 - 2 * k) << 52), (simd::v8d)((1023 - k) << 52));
}

/// Rounds hi + lo to the nearest value of type T, without double rounding.
template <class T> T to(dd x);

template <> inline double to<double>(dd x) { return x.hi + x.lo; }

template <> inline float to<float>(dd x) {
    // float(hi) is the correctly rounded float of hi + lo unless hi is exactly halfway
    // between two floats: |lo| <= ulp(hi)/2 is far below half a float ulp, so only a
    // tie can be decided by lo. (Float midpoints are doubles, so a tie is exact.)
    const float f = static_cast<float>(x.hi);
    const double back = f;
    if (x.lo == 0 || back == x.hi || !std::isfinite(f)) return f;
    // A midpoint has at most 25 significant bits, so the last 28 of hi's 53 are zero:
    // anything else is no tie (and skips the libm call below).
    if ((std::bit_cast<std::uint64_t>(x.hi) & ((std::uint64_t{1} << 28) - 1)) != 0) return f;
    const float other = std::nextafter(f, x.hi > back ? INFINITY : -INFINITY);
    const bool tie = (x.hi - back) == (static_cast<double>(other) - x.hi); // exact (Sterbenz)
    if (!tie) return f;
    const bool lo_points_to_other = (x.lo > 0) == (static_cast<double>(other) > x.hi);
    return lo_points_to_other ? other : f;
}

/// to<T> of each lane of x, into out[0, lanes): the same values as lane by lane. float:
/// every lane rounded at once, where every lane takes one of to<float>'s early returns
/// (float(hi) is the answer: lo is 0, hi is a float, hi is no tie, or the float is not
/// finite), else lane by lane.
template <class T, class D> inline void to_each(T* out, dd_of<D> x) {
    if constexpr (std::is_same_v<D, double>) *out = to<T>(x);
    else if constexpr (std::is_same_v<T, double>) simd::store(out, D(x.hi + x.lo));
    else {
        constexpr int kLanes = int(sizeof(D) / sizeof(double));
        using L = decltype(D{} < D{}); // lanes of 64-bit integers
        using F = std::conditional_t<kLanes == 8, simd::v8f, float __attribute__((vector_size(16)))>;
        const F f = __builtin_convertvector(x.hi, F);
        const D back = __builtin_convertvector(f, D);
        const D magnitude = simd::abs(back);
        constexpr long long kLast28 = (1LL << 28) - 1; // as in to<float>: a tie has them 0
        const L no_tie = ((L)x.hi & kLast28) != 0;
        const L early = (x.lo == 0) | (back == x.hi) | no_tie | !(magnitude <= std::numeric_limits<float>::max());
        bool all = true;
        for (int j = 0; j < kLanes; ++j) all = all && early[j] != 0;
        if (all) std::memcpy(out, &f, sizeof f);
        else
            for (int j = 0; j < kLanes; ++j) out[j] = to<float>(dd{x.hi[j], x.lo[j]});
    }
}

} // namespace bnorm::detail
