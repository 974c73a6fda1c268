// The kernels of layer and RMS norm over one row of D contiguous values, with μ and
// invstd per row and γ, β per position in the row: y (forward), the row's weighted sums
// (backward's pass A) and dx with the row's share of dγ and dβ (backward's pass B).
// Eight values at a time (v8d), then four (v4d), then one, with the same operations.
#pragma once

#include "certificates.hpp"
#include "ddouble.hpp"
#include "formulas.hpp"
#include "stats/moments.hpp"
#include "stats/summation.hpp"
#include "lanes.hpp"
#include "simd.hpp"

#include <cmath>
#include <cstdint>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

using detail::simd::v4d;
using detail::simd::v8d;

/// A row's statistics in double-double: μ (0 for RMS) and invstd = 1/sqrt(var + eps).
struct RowStats {
    dd mean, invstd;
};

/// p[i] (p[i..i+3]) in double, or `absent` when there is no p.
template <class D, class T> [[gnu::always_inline]] inline D at(const T* p, std::int64_t i, double absent) {
    return p ? lanes<D>(p, std::size_t(i)) : detail::broadcast<D>(absent);
}

template <class T> [[gnu::always_inline]] inline void put_value(T* p, std::int64_t i, double v) { p[i] = T(v); }
template <class T> [[gnu::always_inline]] inline void put_value(T* p, std::int64_t i, v4d v) {
    detail::simd::store(p + i, v);
}
template <class T> [[gnu::always_inline]] inline void put_value(T* p, std::int64_t i, v8d v) {
    detail::simd::store(p + i, v);
}

/// Calls f(i, D{}) over [0, n): eight at a time (D = v8d: one AVX-512 vector, or two of
/// four elsewhere), then four (v4d), then one (double); every value gets the same
/// operations whichever way it is reached.
template <class F> [[gnu::always_inline]] inline void each_lane(std::int64_t n, F&& f) {
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8) f(i, v8d{});
    for (; i + 4 <= n; i += 4) f(i, v4d{});
    for (; i < n; ++i) f(i, 0.0);
}

/// |y| is below 2^-26 of the terms it came from: the double result may have lost what a
/// float32 rounding needs (its error, a few 2^-53 of the terms, is then beyond 2^-27 of y).
template <class D> [[gnu::always_inline]] inline auto cancels(D y, D terms) {
    return magnitude(y) < 0x1p-26 * terms;
}
/// Whether any lane of any mask noted was set: the masks are or-ed lane by lane, and
/// looked at once at the end (a test per vector would cost more than the test itself).
struct AnyLane {
    mask_of<v8d> m8{};
    mask_of<v4d> m4{};
    bool m1 = false;
    void note(mask_of<v8d> m) { m8 |= m; }
    void note(mask_of<v4d> m) { m4 |= m; }
    void note(bool m) { m1 = m1 || m; }
    bool any() const {
        long long a = 0;
        for (int j = 0; j < 8; ++j) a |= m8[j];
        for (int j = 0; j < 4; ++j) a |= m4[j];
        return a != 0 || m1;
    }
};

// ---- forward: y = γ·(x − μ)·invstd + β --------------------------------------------------
//
// float32: a = γ·invstd and y = a·((x − μh) − μl) + β in double (normalize_plain), each
// value checked for cancellation of β against a·(x − μ) (cancels); a row with such values
// has them again in double-double. float64: a = γ·invstd in double-double, y by
// normalize_dd. RMS has μ = 0, β = 0.

/// y of one row; gamma and beta may be null.
template <class T>
[[gnu::noinline]] void normalize_row(const T* __restrict x, const T* __restrict gamma, const T* __restrict beta,
                                     std::int64_t n, const RowStats& s, T* __restrict y) {
    using detail::broadcast;
    const double mh = s.mean.hi, ml = s.mean.lo, ih = s.invstd.hi, il = s.invstd.lo;
    auto in_dd = [&]<class D>(std::int64_t i, D) {
        const dd_of<D> a = detail::mul(dd_of<D>{broadcast<D>(ih), broadcast<D>(il)}, at<D>(gamma, i, 1.0));
        return normalize_dd(lanes<D>(x, std::size_t(i)), broadcast<D>(mh), broadcast<D>(ml), a.hi, a.lo,
                            at<D>(beta, i, 0.0));
    };
    if constexpr (sizeof(T) == 8) {
        each_lane(n, [&]<class D>(std::int64_t i, D) { put_value(y, i, in_dd(i, D{})); });
    } else {
        AnyLane redo;
        each_lane(n, [&]<class D>(std::int64_t i, D) {
            const D a = at<D>(gamma, i, 1.0) * broadcast<D>(ih), b = at<D>(beta, i, 0.0);
            const D d = D(lanes<D>(x, std::size_t(i)) - broadcast<D>(mh)) - broadcast<D>(ml);
            const D v = fused(a, d, b);
            if (beta) redo.note(cancels(v, D(magnitude(D(a * d)) + magnitude(b))));
            put_value(y, i, v);
        });
        if (!redo.any()) return;
        for (std::int64_t i = 0; i < n; ++i) { // the same test, one value at a time
            const double a = at<double>(gamma, i, 1.0) * ih, b = at<double>(beta, i, 0.0);
            const double d = (double(x[i]) - mh) - ml;
            if (cancels(fused(a, d, b), magnitude(a * d) + magnitude(b))) y[i] = float(in_dd(i, 0.0));
        }
    }
}

// ---- backward's pass A: the row's sums around K ------------------------------------------
//
// With dx̂ = γ·dy and d = x − K: Σ d, Σ d², Σ dx̂, Σ dx̂·d, each as a compensated sum
// (Ogita, Rump & Oishi's Sum2: TwoSum per term, the error terms summed apart) of exact
// terms: d = x − K by TwoSum, the products by TwoProd, dx̂ exact in double for float32 and
// a TwoProd for float64. Eight lanes, then the lanes added in double-double. Also max|x|
// and max|dy| for the range check.

struct RowSums {
    dd d, dd2, g, gd; // Σ d, Σ d², Σ dx̂, Σ dx̂·d
    double max_x = 0, max_dy = 0;
};

template <class D> struct SumLanes {
    D s[4]{}, e[4]{}; // per sum: the running sum, and its error terms
    D max_x{}, max_dy{};
    [[gnu::always_inline]] inline void add(int k, D hi, D lo) {
        const dd_of<D> t = detail::two_sum(s[k], hi);
        s[k] = t.hi, e[k] += t.lo + lo;
    }
};

/// The sums of one row around K (K = 0 for RMS); dy and gamma may be null (forward: no dy).
template <class T>
[[gnu::noinline]] RowSums row_sums(const T* __restrict x, const T* __restrict dy, const T* __restrict gamma,
                                   std::int64_t n, double K) {
    SumLanes<v8d> v; // eight lanes: four chains of TwoSum wait on each other's latency
    SumLanes<double> one;
    auto step = [&]<class D>(SumLanes<D>& acc, std::int64_t i) {
        const D xv = lanes<D>(x, std::size_t(i));
        const dd_of<D> d = detail::two_sum(xv, detail::broadcast<D>(-K));
        const dd_of<D> sq = detail::two_prod(d.hi, d.hi);
        acc.add(0, d.hi, d.lo);
        acc.add(1, sq.hi, D(sq.lo + 2.0 * d.hi * d.lo));
        acc.max_x = max_magnitude(acc.max_x, xv);
        if (!dy) return;
        const D g = lanes<D>(dy, std::size_t(i));
        acc.max_dy = max_magnitude(acc.max_dy, g);
        dd_of<D> gg{g, D{}};
        if (gamma) {
            if constexpr (sizeof(T) == 4) gg.hi = g * lanes<D>(gamma, std::size_t(i)); // exact
            else gg = detail::two_prod(g, lanes<D>(gamma, std::size_t(i)));
        }
        const dd_of<D> p = detail::two_prod(gg.hi, d.hi);
        acc.add(2, gg.hi, gg.lo);
        acc.add(3, p.hi, D(p.lo + (gg.hi * d.lo + gg.lo * d.hi)));
    };
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8) step(v, i);
    for (; i < n; ++i) step(one, i);
    RowSums r;
    dd* out[4] = {&r.d, &r.dd2, &r.g, &r.gd};
    for (int k = 0; k < 4; ++k) {
        dd t = detail::two_sum(one.s[k], one.e[k]);
        for (int j = 0; j < 8; ++j) t = detail::add(t, detail::two_sum(v.s[k][j], v.e[k][j]));
        *out[k] = t;
    }
    r.max_x = one.max_x, r.max_dy = one.max_dy;
    for (int j = 0; j < 8; ++j) r.max_x = max_magnitude(r.max_x, v.max_x[j]), r.max_dy = max_magnitude(r.max_dy, v.max_dy[j]);
    // a NaN is not taken by max_magnitude: the sums carry it
    if (!std::isfinite(r.d.hi) || !std::isfinite(r.dd2.hi)) r.max_x = NAN;
    if (dy && (!std::isfinite(r.g.hi) || !std::isfinite(r.gd.hi))) r.max_dy = NAN;
    return r;
}

/// float32 layer norm: the same sums in plain double, as the engine's plain kernels sum a
/// channel (each of eight lanes folded into a compensated sum every kPlainRun terms; the
/// terms' own rounding, d = x − K and dx̂·d, counted as two more), as Moments whose "dy" is
/// dx̂: the engine's backward certificate (certificates.hpp) then tells whether they are
/// good enough for dx = invstd·(dx̂ − B − (x − μ)·H) in double, which is its formula with
/// a = invstd. max_abs and dy_max_abs are max|x| and max|dx̂|.
inline Moments row_moments_plain(const float* __restrict x, const float* __restrict dy, const float* __restrict gamma,
                                 std::int64_t n, double K) {
    using detail::broadcast;
    v8d p[5], sum[5]{}, err[5]{}; // Σd, Σd², Σdx̂, Σdx̂·d, Σdx̂²
    v8d mx{}, mg{};
    const v8d k = broadcast<v8d>(K);
    std::int64_t i = 0;
    while (i + 8 <= n) {
        for (auto& v : p) v = v8d{};
        const std::int64_t end = std::min(n - n % 8, i + 8 * kPlainRun);
        for (; i < end; i += 8) {
            const v8d xv = lanes<v8d>(x, std::size_t(i)), d = xv - k;
            v8d g = lanes<v8d>(dy, std::size_t(i));
            if (gamma) g *= lanes<v8d>(gamma, std::size_t(i)); // exact
            p[0] += d, p[1] = fused(d, d, p[1]), p[2] += g, p[3] = fused(g, d, p[3]), p[4] = fused(g, g, p[4]);
            mx = max_magnitude(mx, xv), mg = max_magnitude(mg, g);
        }
        for (int j = 0; j < 5; ++j) add_compensated(sum[j], err[j], p[j]);
    }
    double tail[5]{}, tx = 0, tg = 0;
    for (; i < n; ++i) {
        const double d = double(x[i]) - K, g = double(dy[i]) * (gamma ? double(gamma[i]) : 1.0);
        tail[0] += d, tail[1] = std::fma(d, d, tail[1]), tail[2] += g, tail[3] = std::fma(g, d, tail[3]);
        tail[4] = std::fma(g, g, tail[4]);
        tx = max_magnitude(tx, double(x[i])), tg = max_magnitude(tg, g);
    }
    dd t[5];
    for (int j = 0; j < 5; ++j) {
        t[j] = detail::two_sum(tail[j], 0.0);
        for (int l = 0; l < 8; ++l) t[j] = detail::add(t[j], detail::two_sum(sum[j][l], err[j][l]));
    }
    Moments m;
    m.n = double(n);
    const dd shift = detail::div(t[0], m.n); // μ − K
    m.mean = detail::add(shift, K);
    m.m2 = detail::sub(t[1], detail::mul(t[0], shift));
    m.sum_dy = t[2];
    m.sum_dyd = detail::sub(t[3], detail::mul(t[2], shift)); // Σdx̂·(x − μ)
    m.dy_sq = t[4];
    m.sq = t[1].hi;
    m.rel = kPlainGamma;
    m.max_abs = tx, m.dy_max_abs = tg;
    for (int l = 0; l < 8; ++l) m.max_abs = max_magnitude(m.max_abs, mx[l]), m.dy_max_abs = max_magnitude(m.dy_max_abs, mg[l]);
    return m;
}

// ---- backward's pass B: dx, and the row's terms of dγ and dβ -------------------------------
//
// dx = invstd·(dx̂ − B − (x − μ)·H) with B = Σdx̂/D (0 for RMS) and H = invstd²·Σdx̂·(x − μ)/D:
// float64 in double-double (every error term, as input_gradient_dd, with dx̂ = γ·dy in
// double-double too); float32 in double, each value checked for cancellation of the
// three terms (cancels), and a row with such values has them again in double-double.
// dγ += dy·(x − μ)·invstd and dβ += dy, per position, into compensated column sums
// (hi and error arrays), every product by TwoProd.

/// The coefficients of a row's dx.
struct RowGradient {
    dd mean, invstd, B, H;
};

/// Column sums of dγ and dβ: n values each, hi and error terms.
struct ColumnSums {
    double *g_hi, *g_err, *b_hi, *b_err;
};

template <class D>
[[gnu::always_inline]] inline D input_gradient_row_dd(D x, dd_of<D> g, D mh, D ml, D ih, D il, D Bh, D Bl, D Hh,
                                                      D Hl) {
    // input_gradient_dd with dx̂ = g.hi + g.lo: w = dx̂ − B keeps g.lo in its error term
    const D s = x - mh;
    const D sb = s - x;
    const D e = ((x - (s - sb)) + (-mh - sb)) - ml;
    const D ph = s * Hh;
    const D pl = fused(s, Hh, -ph) + (s * Hl + e * Hh);
    const D wh = g.hi - Bh;
    const D wb = wh - g.hi;
    const D wl = (((g.hi - (wh - wb)) + (-Bh - wb)) - Bl) + g.lo;
    const D ih2 = wh - ph;
    const D ib = ih2 - wh;
    const D il2 = ((wh - (ih2 - ib)) + (-ph - ib)) + (wl - pl);
    return fused(ih, ih2, ih * il2 + il * ih2);
}

/// dx of one row, and its terms added to the column sums (cols may have null arrays when
/// neither dγ nor dβ is wanted). gamma may be null.
template <class T>
[[gnu::noinline]] void input_gradient_row(const T* __restrict x, const T* __restrict dy, const T* __restrict gamma,
                                          std::int64_t n, const RowGradient& c, T* __restrict dx, ColumnSums cols) {
    using detail::broadcast;
    const double mh = c.mean.hi, ml = c.mean.lo, ih = c.invstd.hi, il = c.invstd.lo;
    auto dxhat = [&]<class D>(std::int64_t i, D g) {
        if (!gamma) return dd_of<D>{g, D{}};
        if constexpr (sizeof(T) == 4) return dd_of<D>{D(g * lanes<D>(gamma, std::size_t(i))), D{}}; // exact
        else return detail::two_prod(g, lanes<D>(gamma, std::size_t(i)));
    };
    auto in_dd = [&]<class D>(std::int64_t i, D) {
        const D g = lanes<D>(dy, std::size_t(i));
        return input_gradient_row_dd(lanes<D>(x, std::size_t(i)), dxhat(i, g), broadcast<D>(mh), broadcast<D>(ml),
                                     broadcast<D>(ih), broadcast<D>(il), broadcast<D>(c.B.hi), broadcast<D>(c.B.lo),
                                     broadcast<D>(c.H.hi), broadcast<D>(c.H.lo));
    };
    auto columns = [&]<class D>(std::int64_t i, D) {
        if (!cols.g_hi) return;
        const D xv = lanes<D>(x, std::size_t(i)), g = lanes<D>(dy, std::size_t(i));
        const dd_of<D> d = detail::two_sum(xv, broadcast<D>(-mh)); // x − μ = d.hi + (d.lo − μl)
        const dd_of<D> p = detail::two_prod(g, d.hi);
        const D pl = p.lo + g * D(d.lo - broadcast<D>(ml));
        const dd_of<D> q = detail::two_prod(p.hi, broadcast<D>(ih)); // ·invstd
        const D ql = q.lo + (p.hi * broadcast<D>(il) + pl * broadcast<D>(ih));
        const dd_of<D> sg = detail::two_sum(lanes<D>(cols.g_hi, std::size_t(i)), q.hi);
        put(cols.g_hi, std::size_t(i), sg.hi), put(cols.g_err, std::size_t(i), D(lanes<D>(cols.g_err, std::size_t(i)) + (sg.lo + ql)));
        const dd_of<D> sb = detail::two_sum(lanes<D>(cols.b_hi, std::size_t(i)), g);
        put(cols.b_hi, std::size_t(i), sb.hi), put(cols.b_err, std::size_t(i), D(lanes<D>(cols.b_err, std::size_t(i)) + sb.lo));
    };
    if constexpr (sizeof(T) == 8) {
        each_lane(n, [&]<class D>(std::int64_t i, D) {
            put_value(dx, i, in_dd(i, D{}));
            columns(i, D{});
        });
    } else {
        // float32: the column terms dy·x̂ in double (three roundings, 2^-51 of each term,
        // below what the row's statistics leave), added by TwoSum
        AnyLane redo;
        auto plain = [&]<class D>(std::int64_t i, D, D& terms, D& d) {
            const D g = dxhat(i, lanes<D>(dy, std::size_t(i))).hi;
            d = D(lanes<D>(x, std::size_t(i)) - broadcast<D>(mh)) - broadcast<D>(ml);
            const D w = g - broadcast<D>(c.B.hi), h = d * broadcast<D>(c.H.hi);
            terms = magnitude(g) + magnitude(broadcast<D>(c.B.hi)) + magnitude(h);
            return D(broadcast<D>(ih) * D(w - h));
        };
        each_lane(n, [&]<class D>(std::int64_t i, D) {
            D terms, d;
            const D v = plain(i, D{}, terms, d);
            redo.note(cancels(v, D(broadcast<D>(ih) * terms)));
            put_value(dx, i, v);
            if (!cols.g_hi) return;
            const D g = lanes<D>(dy, std::size_t(i)), t = g * D(d * broadcast<D>(ih));
            const dd_of<D> sg = detail::two_sum(lanes<D>(cols.g_hi, std::size_t(i)), t);
            put(cols.g_hi, std::size_t(i), sg.hi), put(cols.g_err, std::size_t(i), D(lanes<D>(cols.g_err, std::size_t(i)) + sg.lo));
            const dd_of<D> sb = detail::two_sum(lanes<D>(cols.b_hi, std::size_t(i)), g);
            put(cols.b_hi, std::size_t(i), sb.hi), put(cols.b_err, std::size_t(i), D(lanes<D>(cols.b_err, std::size_t(i)) + sb.lo));
        });
        if (!redo.any()) return;
        for (std::int64_t i = 0; i < n; ++i) { // the same test, one value at a time
            double terms, d;
            const double v = plain(i, 0.0, terms, d);
            if (cancels(v, ih * terms)) dx[i] = float(in_dd(i, 0.0));
        }
    }
}

} // namespace
} // namespace bnorm::kernels
