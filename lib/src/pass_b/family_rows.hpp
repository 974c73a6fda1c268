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
#include "prefetch.hpp"
#include "simd.hpp"

#include <cmath>
#include <cstdint>
#include <type_traits>

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

/// Whether the row kernels take eight values at a time: with AVX-512 only. Elsewhere GCC
/// lowers the eight-lane code of these kernels to lanes spilled one by one (x86-64-v3
/// builds ran them several times slower); four at a time gives the same bits, since every
/// value gets the same operations.
#if defined(__AVX512F__)
constexpr bool kEightLanes = true;
#else
constexpr bool kEightLanes = false;
#endif

/// Calls f(i, D{}) over [0, n): eight at a time (D = v8d, kEightLanes), then four (v4d),
/// then one (double); every value gets the same operations whichever way it is reached.
template <class F> [[gnu::always_inline]] inline void each_lane(std::int64_t n, F&& f) {
    std::int64_t i = 0;
    if constexpr (kEightLanes)
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
    double max_x = 0, max_dy = 0, max_g = 0; // max_g: the largest |dx̂|
};

template <class D> struct SumLanes {
    D s[4]{}, e[4]{}; // per sum: the running sum, and its error terms
    D max_x{}, max_dy{}, max_g{};
    [[gnu::always_inline]] inline void add(int k, D hi, D lo) {
        const dd_of<D> t = detail::two_sum(s[k], hi);
        s[k] = t.hi, e[k] += t.lo + lo;
    }
};

/// The sums of one row around K (K = 0 for RMS); dy and gamma may be null (forward: no dy).
template <class T>
[[gnu::noinline]] RowSums row_sums(const T* __restrict x, const T* __restrict dy, const T* __restrict gamma,
                                   std::int64_t n, double K) {
    // eight lanes (four chains of TwoSum wait on each other's latency): one v8d, or
    // (!kEightLanes) two v4d halves with the same operations lane by lane
    using L = std::conditional_t<kEightLanes, v8d, v4d>;
    constexpr int kParts = kEightLanes ? 1 : 2, kStep = kLanesOf<L>;
    SumLanes<L> v[kParts];
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
        acc.max_g = max_magnitude(acc.max_g, gg.hi);
        const dd_of<D> p = detail::two_prod(gg.hi, d.hi);
        acc.add(2, gg.hi, gg.lo);
        acc.add(3, p.hi, D(p.lo + (gg.hi * d.lo + gg.lo * d.hi)));
    };
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int h = 0; h < kParts; ++h) step(v[h], i + h * kStep);
    for (; i < n; ++i) step(one, i);
    RowSums r;
    dd* out[4] = {&r.d, &r.dd2, &r.g, &r.gd};
    for (int k = 0; k < 4; ++k) {
        dd t = detail::two_sum(one.s[k], one.e[k]);
        for (int j = 0; j < 8; ++j) t = detail::add(t, detail::two_sum(v[j / kStep].s[k][j % kStep], v[j / kStep].e[k][j % kStep]));
        *out[k] = t;
    }
    r.max_x = one.max_x, r.max_dy = one.max_dy, r.max_g = one.max_g;
    for (int j = 0; j < 8; ++j)
        r.max_x = max_magnitude(r.max_x, v[j / kStep].max_x[j % kStep]),
        r.max_dy = max_magnitude(r.max_dy, v[j / kStep].max_dy[j % kStep]),
        r.max_g = max_magnitude(r.max_g, v[j / kStep].max_g[j % kStep]);
    // a NaN is not taken by max_magnitude: the sums carry it
    if (!std::isfinite(r.d.hi) || !std::isfinite(r.dd2.hi)) r.max_x = NAN;
    if (dy && (!std::isfinite(r.g.hi) || !std::isfinite(r.gd.hi))) r.max_dy = NAN;
    return r;
}

/// How far ahead of its loads row_moments_plain asks for x and dy (values; past the row's
/// end, the next row's): the hardware's prefetchers alone left it waiting on memory.
constexpr std::int64_t kRowAhead = 512;

/// Eight lanes from row_moments_plain's parts: one v8d, or two v4d halves.
inline v8d eight_lanes(const v8d* parts) { return parts[0]; }
inline v8d eight_lanes(const v4d* parts) { return detail::simd::join(parts[0], parts[1]); }

struct PlainRow {
    Moments m;
    double dy_sq; // Σdy², for the bound on the columns' sums
};

/// float32 layer norm: the same sums in plain double, as the engine's plain kernels sum a
/// channel (each of eight lanes folded into a compensated sum every kPlainRun terms; the
/// terms' own rounding, d = x − K and dx̂·d, counted as two more), as Moments whose "dy" is
/// dx̂: the engine's backward certificate (certificates.hpp) then tells whether they are
/// good enough for dx = invstd·(dx̂ − B − (x − μ)·H) in double, which is its formula with
/// a = invstd. max_abs and dy_max_abs are max|x| and max|dx̂|. γ comes in double, ones
/// without γ (the caller's floats converted once per call: a conversion and a branch less
/// per value, the same bits).
inline PlainRow row_moments_plain(const float* __restrict x, const float* __restrict dy, const double* __restrict gamma,
                                  std::int64_t n, double K) {
    using detail::broadcast;
    // eight lanes: one v8d, or (!kEightLanes) two v4d halves, lane by lane the same
    // operations, joined into eight at the end
    using L = std::conditional_t<kEightLanes, v8d, v4d>;
    constexpr int kParts = kEightLanes ? 1 : 2, kStep = kLanesOf<L>;
    L p[kParts][6], sum[kParts][6]{}, err[kParts][6]{}; // Σd, Σd², Σdx̂, Σdx̂·d, Σdx̂², Σdy²
    L mxp[kParts]{}, mgp[kParts]{};
    const L k = broadcast<L>(K);
    std::int64_t i = 0;
    while (i + 8 <= n) {
        for (auto& part : p)
            for (auto& v : part) v = L{};
        const std::int64_t end = std::min(n - n % 8, i + 8 * kPlainRun);
        for (; i < end; i += 8) {
            if (i % 16 == 0) prefetch_l1(x, i + kRowAhead), prefetch_l1(dy, i + kRowAhead);
            for (int h = 0; h < kParts; ++h) {
                const std::size_t at = std::size_t(i + h * kStep);
                L* q = p[h];
                const L xv = lanes<L>(x, at), d = xv - k;
                const L g0 = lanes<L>(dy, at);
                L g = g0;
                g *= lanes<L>(gamma, at), q[5] = fused(g0, g0, q[5]); // exact
                q[0] += d, q[1] = fused(d, d, q[1]), q[2] += g, q[3] = fused(g, d, q[3]), q[4] = fused(g, g, q[4]);
                mxp[h] = max_magnitude(mxp[h], xv), mgp[h] = max_magnitude(mgp[h], g);
            }
        }
        for (int h = 0; h < kParts; ++h)
            for (int j = 0; j < 6; ++j) add_compensated(sum[h][j], err[h][j], p[h][j]);
    }
    const v8d mx = eight_lanes(mxp), mg = eight_lanes(mgp);
    double tail[6]{}, tx = 0, tg = 0;
    for (; i < n; ++i) {
        const double d = double(x[i]) - K, g = double(dy[i]) * gamma[i];
        tail[0] += d, tail[1] = std::fma(d, d, tail[1]), tail[2] += g, tail[3] = std::fma(g, d, tail[3]);
        tail[4] = std::fma(g, g, tail[4]), tail[5] = std::fma(double(dy[i]), double(dy[i]), tail[5]);
        tx = max_magnitude(tx, double(x[i])), tg = max_magnitude(tg, g);
    }
    // the lanes added plainly, pairwise (three roundings, within kPlainGamma's margin for
    // merges): a double-double merge per lane cost a flop per value on rows of 1024
    auto pairwise = [](v8d v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); };
    dd t[6];
    for (int j = 0; j < 6; ++j) {
        L s_parts[kParts], e_parts[kParts];
        for (int h = 0; h < kParts; ++h) s_parts[h] = sum[h][j], e_parts[h] = err[h][j];
        t[j] = detail::add(detail::two_sum(pairwise(eight_lanes(s_parts)), pairwise(eight_lanes(e_parts))), tail[j]);
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
    return {m, t[5].hi};
}

// ---- backward's pass B: dx, and the row's terms of dγ and dβ -------------------------------
//
// dx = invstd·(dx̂ − B − (x − μ)·H) with B = Σdx̂/D (0 for RMS) and H = invstd²·Σdx̂·(x − μ)/D:
// float64 in double-double (every error term, as input_gradient_dd, with dx̂ = γ·dy in
// double-double too); float32 in double, the values that may have cancelled (cancels,
// against a bound on the row's terms) again in double-double. dγ += dy·(x − μ)·invstd
// and dβ += dy, per position: float64 into compensated column sums (hi and error
// arrays), every product by TwoProd; float32 plainly for a few rows, then folded into
// those, under a bound that the caller checks (and sums again by TwoProd if it fails).

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

/// dx̂ = γ·dy of lanes i (γ null: dy), exact: in double for float32, by TwoProd for float64.
template <class T, class D> [[gnu::always_inline]] inline dd_of<D> dxhat_at(const T* gamma, std::int64_t i, D g) {
    if (!gamma) return dd_of<D>{g, D{}};
    if constexpr (sizeof(T) == 4) return dd_of<D>{D(g * lanes<D>(gamma, std::size_t(i))), D{}};
    else return detail::two_prod(g, lanes<D>(gamma, std::size_t(i)));
}

/// dx of lanes i in double-double (input_gradient_row_dd).
template <class T, class D>
[[gnu::always_inline]] inline D dx_dd(const T* x, const T* dy, const T* gamma, std::int64_t i, const RowGradient& c) {
    using detail::broadcast;
    return input_gradient_row_dd(lanes<D>(x, std::size_t(i)), dxhat_at(gamma, i, lanes<D>(dy, std::size_t(i))),
                                 broadcast<D>(c.mean.hi), broadcast<D>(c.mean.lo), broadcast<D>(c.invstd.hi),
                                 broadcast<D>(c.invstd.lo), broadcast<D>(c.B.hi), broadcast<D>(c.B.lo),
                                 broadcast<D>(c.H.hi), broadcast<D>(c.H.lo));
}

/// A row's terms of dγ (dy·x̂, by TwoProd) and dβ (dy) added to the column sums by TwoSum:
/// each term to ~2^-100, so that columns that cancel over the rows keep their digits.
template <class T>
[[gnu::noinline]] void add_columns_dd(const T* __restrict x, const T* __restrict dy, std::int64_t n,
                                      const RowGradient& c, ColumnSums cols) {
    using detail::broadcast;
    const double mh = c.mean.hi, ml = c.mean.lo, ih = c.invstd.hi, il = c.invstd.lo;
    each_lane(n, [&]<class D>(std::int64_t i, D) {
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
    });
}

/// float64: dx of one row in double-double (every error term, as input_gradient_dd), and
/// its terms added to the column sums (cols may have null arrays when neither dγ nor dβ
/// is wanted). gamma may be null.
[[gnu::noinline]] inline void input_gradient_row(const double* __restrict x, const double* __restrict dy,
                                                 const double* __restrict gamma, std::int64_t n, const RowGradient& c,
                                                 double* __restrict dx, ColumnSums cols) {
    each_lane(n, [&]<class D>(std::int64_t i, D) { put_value(dx, i, dx_dd<double, D>(x, dy, gamma, i, c)); });
    if (cols.g_hi) add_columns_dd(x, dy, n, c, cols);
}

/// float32 column sums of a few rows, added plainly in double: dγ's terms dy·x̂ (four
/// roundings) and dβ's dy (exact). fold_columns adds them into the ColumnSums, so a
/// column's sum is off by at most γ(rows + 6)·Σ|terms|, which the caller bounds.
struct PlainColumns {
    double *g, *b;
};

/// cols += acc by TwoSum, and acc = 0.
inline void fold_columns(PlainColumns acc, ColumnSums cols, std::int64_t n) {
    each_lane(n, [&]<class D>(std::int64_t i, D) {
        const std::size_t j = std::size_t(i);
        const dd_of<D> sg = detail::two_sum(lanes<D>(cols.g_hi, j), lanes<D>(acc.g, j));
        put(cols.g_hi, j, sg.hi), put(cols.g_err, j, D(lanes<D>(cols.g_err, j) + sg.lo));
        const dd_of<D> sb = detail::two_sum(lanes<D>(cols.b_hi, j), lanes<D>(acc.b, j));
        put(cols.b_hi, j, sb.hi), put(cols.b_err, j, D(lanes<D>(cols.b_err, j) + sb.lo));
        put(acc.g, j, D{}), put(acc.b, j, D{});
    });
}

/// float32 pass B's coefficients of one row: dx = invstd·(dx̂ − B) − H·x̂ = fma(x̂, c1,
/// fma(invstd, dx̂, c0)) with x̂ = (x − μ)·invstd, whose x̂ the columns' terms share.
struct PlainRowB {
    double mh, ml, ih, c0, c1;
    static PlainRowB of(const RowGradient& c) {
        return {c.mean.hi, c.mean.lo, c.invstd.hi, -(c.invstd.hi * c.B.hi), -c.H.hi};
    }
    template <class D> [[gnu::always_inline]] inline D dx(D x, D g, D& xhat) const {
        using detail::broadcast;
        xhat = D(D(x - broadcast<D>(mh)) - broadcast<D>(ml)) * broadcast<D>(ih);
        return fused(xhat, broadcast<D>(c1), fused(broadcast<D>(ih), g, broadcast<D>(c0)));
    }
};

/// The rows of input_gradient_group_plain, up to kGroupRows of them.
constexpr int kGroupRows = 4;
struct RowGroup {
    const float *x[kGroupRows], *dy[kGroupRows];
    float* dx[kGroupRows];
    const RowGradient* c[kGroupRows];
    double small[kGroupRows];
};

/// float32: dx of G rows of n values in double, and their terms of dγ and dβ added to
/// `acc` (null arrays: none wanted), the rows' terms of a column one after the other, so
/// that a column's plain sums are loaded and stored once for G rows. dx is off by a few
/// 2^-53 of its terms; where |dx| < small (2^-26 of the row's largest terms: cancels)
/// that may be beyond what float32's rounding needs. Returns the rows (bit k for row k)
/// that have such values, for redo_cancelling: one bound per row against the row's least
/// |dx|, where a test per value cost as much as dx itself. Stream: dx is written with
/// non-temporal stores (the rows' dx equally aligned). γ in double, as row_moments_plain.
template <bool Stream, int G>
[[gnu::noinline]] unsigned input_gradient_group_plain(const RowGroup& rows, const double* __restrict gamma,
                                                      std::int64_t n, PlainColumns acc) {
    static_assert(G >= 1 && G <= kGroupRows);
    PlainRowB b[G];
    v8d least8[G];
    v4d least4[G];
    double least[G];
    // the rows' pointers in locals: the stores below (memcpy's) could otherwise change
    // rows', which the loop would load again for every vector
    const float *xs[G], *gs[G];
    float* dxs[G];
    for (int k = 0; k < G; ++k) {
        b[k] = PlainRowB::of(*rows.c[k]), least8[k] = detail::broadcast<v8d>(INFINITY), least4[k] = detail::broadcast<v4d>(INFINITY), least[k] = INFINITY;
        xs[k] = rows.x[k], gs[k] = rows.dy[k], dxs[k] = rows.dx[k];
    }
    auto each = [&]<class D>(std::int64_t i, D) {
        const std::size_t j = std::size_t(i);
        const D gam = lanes<D>(gamma, j);
        D sg = acc.g ? lanes<D>(acc.g, j) : D{}, sb = acc.b ? lanes<D>(acc.b, j) : D{};
        for (int k = 0; k < G; ++k) { // (unrolled)
            const D g = lanes<D>(gs[k], j);
            D xhat;
            const D v = b[k].dx(lanes<D>(xs[k], j), D(g * gam), xhat); // γ·dy exact
            if constexpr (std::is_same_v<D, v8d>) least8[k] = min_magnitude(least8[k], v);
            else if constexpr (std::is_same_v<D, v4d>) least4[k] = min_magnitude(least4[k], v);
            else least[k] = min_magnitude(least[k], v);
            if constexpr (Stream && (std::is_same_v<D, v8d> || (!kEightLanes && std::is_same_v<D, v4d>)))
                detail::simd::stream(dxs[k] + i, v);
            else put_value(dxs[k], i, v);
            sg = fused(g, xhat, sg), sb += g;
        }
        if (acc.g) put(acc.g, j, sg), put(acc.b, j, sb);
    };
    // each_lane, with the values before dx's first 32-byte boundary one by one when streaming
    std::int64_t i = 0;
    if constexpr (Stream)
        for (; i < n && reinterpret_cast<std::uintptr_t>(dxs[0] + i) % 32 != 0; ++i) each(i, 0.0);
    if constexpr (kEightLanes)
        for (; i + 8 <= n; i += 8) each(i, v8d{});
    for (; i + 4 <= n; i += 4) each(i, v4d{});
    for (; i < n; ++i) each(i, 0.0);
    unsigned cancelling = 0;
    for (int k = 0; k < G; ++k) {
        for (int j = 0; j < 8; ++j) least[k] = std::min(least[k], least8[k][j]);
        for (int j = 0; j < 4; ++j) least[k] = std::min(least[k], least4[k][j]);
        if (least[k] < rows.small[k]) cancelling |= 1u << k;
    }
    return cancelling;
}

/// The values of a row that input_gradient_group_plain flagged, found by the same test
/// one at a time (|dx| < small, with the coefficients c it used), computed again in
/// double-double with `exact`: coefficients carried to ~2^-100, so that each is right
/// relative to itself however far below its terms it is.
inline void redo_cancelling(const float* x, const float* dy, const float* gamma, std::int64_t n,
                            const RowGradient& c, double small, const RowGradient& exact, float* dx) {
    const PlainRowB b = PlainRowB::of(c);
    for (std::int64_t m = 0; m < n; ++m) {
        const double g = double(dy[m]) * (gamma ? double(gamma[m]) : 1.0);
        double xhat;
        if (magnitude(b.dx(double(x[m]), g, xhat)) < small) dx[m] = float(dx_dd<float, double>(x, dy, gamma, m, exact));
    }
}

/// input_gradient_group_plain for the first `count` rows of `rows`.
template <bool Stream>
unsigned input_gradient_group_plain(const RowGroup& rows, int count, const double* gamma, std::int64_t n,
                                    PlainColumns acc) {
    switch (count) {
    case 1: return input_gradient_group_plain<Stream, 1>(rows, gamma, n, acc);
    case 2: return input_gradient_group_plain<Stream, 2>(rows, gamma, n, acc);
    case 3: return input_gradient_group_plain<Stream, 3>(rows, gamma, n, acc);
    default: return input_gradient_group_plain<Stream, 4>(rows, gamma, n, acc);
    }
}

} // namespace
} // namespace bnorm::kernels
