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
// This needs IEEE double arithmetic evaluated as written: the build uses
// -ffp-contract=off and never -ffast-math.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace bnorm::detail {

struct dd {
    double hi = 0.0;
    double lo = 0.0;
};

inline dd two_sum(double a, double b) {
    const double s = a + b;
    const double bb = s - a;
    const double e = (a - (s - bb)) + (b - bb);
    return {s, e};
}

/// Requires |a| >= |b| (or a == 0).
inline dd fast_two_sum(double a, double b) {
    const double s = a + b;
    const double e = b - (s - a);
    return {s, e};
}

inline dd two_prod(double a, double b) {
    const double p = a * b;
    return {p, std::fma(a, b, -p)};
}

/// dd + double (JMP Algorithm 4, error <= 2u^2).
inline dd add(dd x, double y) {
    dd s = two_sum(x.hi, y);
    return fast_two_sum(s.hi, s.lo + x.lo);
}

/// dd + dd (JMP Algorithm 6, "accurate", error <= 3u^2).
inline dd add(dd x, dd y) {
    dd s = two_sum(x.hi, y.hi);
    dd t = two_sum(x.lo, y.lo);
    s = fast_two_sum(s.hi, s.lo + t.hi);
    return fast_two_sum(s.hi, s.lo + t.lo);
}

inline dd neg(dd x) { return {-x.hi, -x.lo}; }
inline dd sub(dd x, dd y) { return add(x, neg(y)); }

/// dd * double (JMP Algorithm 9, error <= 2u^2).
inline dd mul(dd x, double y) {
    dd c = two_prod(x.hi, y);
    return fast_two_sum(c.hi, std::fma(x.lo, y, c.lo));
}

/// dd * dd (JMP Algorithm 12, error <= 5u^2).
inline dd mul(dd x, dd y) {
    dd c = two_prod(x.hi, y.hi);
    double t = x.hi * y.lo;
    t = std::fma(x.lo, y.hi, t);
    return fast_two_sum(c.hi, c.lo + t);
}

/// dd / double (JMP Algorithm 15, error <= 3u^2).
inline dd div(dd x, double y) {
    const double th = x.hi / y;
    dd p = two_prod(th, y);
    const double dh = x.hi - p.hi;
    const double dl = x.lo - p.lo;
    const double tl = (dh + dl) / y;
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
/// products with powers of two, exact here. Zero, negative, infinite and NaN x give
/// what 1/sqrt(x.hi) gives.
inline dd rsqrt(dd x) {
    if (!(x.hi > 0) || !std::isfinite(x.hi)) return {1.0 / std::sqrt(x.hi), 0.0};
    const int biased = int(std::bit_cast<std::uint64_t>(x.hi) >> 52); // x.hi > 0: no sign bit
    const int k = (biased - 1023) / 2;                               // in [-511, 511]
    const dd xs{x.hi * pow2(-2 * k), x.lo * pow2(-2 * k)};
    const double r = 1.0 / std::sqrt(xs.hi);
    const dd r2 = two_prod(r, r);
    const dd e = add(dd{1.0, 0.0}, neg(mul(xs, r2))); // 1 − x r², tiny
    const dd root = add(dd{r, 0.0}, mul(e, 0.5 * r));
    return {root.hi * pow2(-k), root.lo * pow2(-k)};
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

} // namespace bnorm::detail
