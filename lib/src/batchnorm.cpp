// Batch normalization kernels, fast path. One kernel serves every layout: the tensor is
// viewed as (outer, C, inner) (layout.hpp) and cut into tiles of about kTileBytes.
//
//   pass A (one read of x, and of dy for backward): each tile's statistics are computed
//          by a two-pass algorithm over the tile, which stays in cache between its two
//          sweeps, so memory sees a single read. Tiles are merged per channel with Chan's
//          formula in double-double, in memory order, within blocks of kBlockBytes; the
//          blocks are merged in order. Threads take whole blocks: the result does not
//          depend on the thread count.
//   pass B (one read of x (and dy), one write of y (dx)): elementwise, in parallel.
//
// Precision (docs/derivation.md): arithmetic is in double, with error-free
// transformations (two_sum, two_prod, compensated sums) exactly where cancellation can
// occur: the centring x − mean (mean carried in double-double), the sums behind the mean,
// M2, dβ and dγ, and the three-term difference of dx. The same code serves float32 and
// float64 data: heavy-tailed float32 data with a dy nearly linear in x needs it too.
// float64 data whose magnitude is outside [2^-400, 2^480], and non-finite data, go to
// the all-double-double kernels of batchnorm_exact.cpp instead.
#include "bnorm/batchnorm.hpp"

#include "batchnorm_exact.hpp"
#include "bnorm/error.hpp"
#include "ddouble.hpp"
#include "parallel.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <type_traits>
#include <vector>

namespace bnorm {
namespace {

using detail::dd;

constexpr std::int64_t kBlockBytes = 4 * 1024 * 1024; // the unit of parallel work
constexpr std::int64_t kSerialBelow = 1 << 16;       // elements: smaller tensors use 1 thread
constexpr int kLanes = 8;                            // independent accumulators, fixed order
constexpr double kMaxMagnitude = 0x1p480, kMinMagnitude = 0x1p-400; // fast-path range (float64)

// ---- one element's contribution to a tile's sums ------------------------------------------

/// sum += v, keeping the rounding error in err (TwoSum).
inline void add_compensated(double& sum, double& err, double v) {
    const double s = sum + v;
    const double bb = s - sum;
    err += (sum - (s - bb)) + (v - bb);
    sum = s;
}

/// Adds x (and its dy g) to sums around K. With Exact, every step is error-free or keeps
/// its error: x − K = d + d_err (TwoSum), d² = p + p_err and g·d = q + q_err (TwoProd),
/// sums compensated. That keeps the mean, M2 and Σ dy·(x − mean) to ~2^-100 relative,
/// which float64 outputs need, and which dx needs in any dtype when its three terms
/// cancel (dy nearly linear in x): heavy-tailed data makes them many orders larger than
/// dx itself. Only float32 forward does without: plain double sums around a reference K
/// lose at most log2(block length) bits of 53, and float32 needs 24.
template <bool Backward, bool Exact>
inline void accumulate(double x, double g, double K, double& s1, double& s1e, double& s2, double& s2e, double& b1,
                       double& b1e, double& b2, double& b2e) {
    const double d = x - K;
    if constexpr (!Exact) {
        s1 += d;
        s2 = std::fma(d, d, s2);
        return;
    }
    const double bb = d - x;
    const double d_err = (x - (d - bb)) + (-K - bb);
    add_compensated(s1, s1e, d);
    s1e += d_err;
    const double p = d * d;
    add_compensated(s2, s2e, p);
    s2e += std::fma(d, d, -p) + 2 * d * d_err;
    if constexpr (Backward) {
        add_compensated(b1, b1e, g);
        const double q = g * d;
        add_compensated(b2, b2e, q);
        b2e += std::fma(g, d, -q) + g * d_err;
    }
}

/// Whether the sums of T's data need the error-free path (see accumulate).
template <class T, bool Backward> constexpr bool kExactSums = Backward || sizeof(T) == 8;

// ---- per-channel statistics as structures of arrays ----------------------------------------

/// Sums over some values of every channel, struct-of-arrays so that loops over channels
/// vectorize, around a reference K per channel (any of the channel's values: the sums are
/// error-free, so a poor reference costs at most log2(count) of the ~106 bits):
/// s1 = Σ(x − K), s2 = Σ(x − K)², and for backward b1 = Σ dy, b2 = Σ dy·(x − K), each with
/// its compensation term.
struct Sums {
    double *n, *K, *s1, *s1_err, *s2, *s2_err, *max_abs, *b1, *b1_err, *b2, *b2_err, *dy_max_abs;
    void reset(std::size_t C, bool backward) {
        storage_.assign((backward ? 12 : 7) * C, 0.0); // one allocation, reused across blocks
        double* p = storage_.data();
        for (double** v : {&n, &K, &s1, &s1_err, &s2, &s2_err, &max_abs}) *v = p, p += C;
        for (double** v : {&b1, &b1_err, &b2, &b2_err, &dy_max_abs}) *v = backward ? (p += C) - C : nullptr;
    }

private:
    std::vector<double> storage_;
};

/// A channel's statistics in double-double: count, mean, M2 = Σ(x − mean)², and for
/// backward Σ dy and Σ dy·(x − mean). Blocks are merged with Chan, Golub & LeVeque's
/// pairwise formula, each centred on its own mean.
struct Moments {
    double n = 0;
    dd mean{}, m2{}, sum_dy{}, sum_dyd{};
    double max_abs = 0, dy_max_abs = 0;

    /// The moments of channel c of a block's sums.
    static Moments of(const Sums& t, std::size_t c, bool backward) {
        Moments m;
        m.n = t.n[c];
        if (m.n == 0) return m;
        const dd s1 = detail::two_sum(t.s1[c], t.s1_err[c]);
        const dd shift = detail::div(s1, m.n); // mean − K
        m.mean = detail::add(shift, t.K[c]);
        m.m2 = detail::sub(detail::two_sum(t.s2[c], t.s2_err[c]), detail::mul(s1, shift));
        m.max_abs = t.max_abs[c];
        if (backward) {
            // Σ dy·(x − mean) = Σ dy·(x − K) − (mean − K)·Σ dy
            m.sum_dy = detail::two_sum(t.b1[c], t.b1_err[c]);
            m.sum_dyd = detail::sub(detail::two_sum(t.b2[c], t.b2_err[c]), detail::mul(m.sum_dy, shift));
            m.dy_max_abs = t.dy_max_abs[c];
        }
        return m;
    }

    void merge(const Moments& o) {
        if (o.n == 0) return;
        max_abs = std::max(max_abs, o.max_abs);
        dy_max_abs = std::max(dy_max_abs, o.dy_max_abs);
        if (n == 0) {
            *this = o;
            return;
        }
        const double total = n + o.n; // exact: counts are far below 2^53
        const dd delta = detail::sub(o.mean, mean);
        const dd new_mean = detail::add(mean, detail::div(detail::mul(delta, o.n), total));
        const dd between = detail::div(detail::mul(detail::mul(delta, delta), n * o.n), total);
        m2 = detail::add(detail::add(m2, o.m2), between);
        // Σ dy·(x − μ) = Σ_a dy·(x − μ_a) + (μ_a − μ)·Σ_a dy + Σ_o dy·(x − μ_o) + (μ_o − μ)·Σ_o dy
        sum_dyd = detail::add(detail::add(sum_dyd, detail::mul(detail::sub(mean, new_mean), sum_dy)),
                              detail::add(o.sum_dyd, detail::mul(detail::sub(o.mean, new_mean), o.sum_dy)));
        sum_dy = detail::add(sum_dy, o.sum_dy);
        mean = new_mean;
        n = total;
    }
};

// ---- blocks: the units of parallel work -------------------------------------------------

/// The tensor (outer, C, inner) is cut into blocks of about kBlockBytes, by whole rows of
/// outer when a row (C·inner values) fits, else by (o, c) runs of `inner` values. The cut
/// depends only on the shape and the element size, never on the thread count.
struct Blocks {
    Layout l;
    bool whole_rows;
    std::int64_t per_block = 0, count = 0; // rows of outer, or (o, c) runs, per block

    Blocks(const Layout& layout, std::size_t bytes_per_element) : l(layout) {
        const std::int64_t budget = std::max<std::int64_t>(1, kBlockBytes / std::int64_t(bytes_per_element));
        const std::int64_t row = l.channels * l.inner;
        whole_rows = row <= budget;
        per_block = whole_rows ? std::max<std::int64_t>(1, budget / row) : std::max<std::int64_t>(1, budget / l.inner);
        const std::int64_t units = whole_rows ? l.outer : l.outer * l.channels;
        count = (units + per_block - 1) / per_block;
    }
    /// Calls run(offset, c) for every (o, c) run of `inner` values in block b, in memory order.
    template <class F> void for_runs(std::int64_t b, F&& run) const {
        const std::int64_t u0 = b * per_block;
        if (whole_rows) {
            const std::int64_t o1 = std::min(l.outer, u0 + per_block);
            for (std::int64_t o = u0; o < o1; ++o)
                for (std::int64_t c = 0; c < l.channels; ++c) run((o * l.channels + c) * l.inner, c);
        } else {
            const std::int64_t r1 = std::min(l.outer * l.channels, u0 + per_block);
            for (std::int64_t r = u0; r < r1; ++r) run(r * l.inner, r % l.channels);
        }
    }
    /// Rows of outer [o0, o1) of block b (whole_rows only).
    std::pair<std::int64_t, std::int64_t> rows(std::int64_t b) const {
        return {b * per_block, std::min(l.outer, (b + 1) * per_block)};
    }
};

/// Adds the values v[0, len) (and dy g) of channel c to its sums, in kLanes independent
/// lanes combined in a fixed order.
template <class T, bool Backward> void add_run(const T* v, const T* g, std::int64_t len, std::size_t c, Sums& t) {
    if (t.n[c] == 0) t.K[c] = double(v[0]); // the channel's reference in this block
    const double K = t.K[c];
    double s1[kLanes] = {}, s1e[kLanes] = {}, s2[kLanes] = {}, s2e[kLanes] = {}, b1[kLanes] = {}, b1e[kLanes] = {},
           b2[kLanes] = {}, b2e[kLanes] = {}, mx[kLanes] = {}, gm[kLanes] = {};
    auto step = [&](int j, std::int64_t i) {
        const double xi = double(v[i]);
        const double gi = Backward ? double(g[i]) : 0.0;
        mx[j] = std::max(mx[j], std::abs(xi));
        if constexpr (Backward) gm[j] = std::max(gm[j], std::abs(gi));
        accumulate<Backward, kExactSums<T, Backward>>(xi, gi, K, s1[j], s1e[j], s2[j], s2e[j], b1[j], b1e[j], b2[j], b2e[j]);
    };
    std::int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes)
        for (int j = 0; j < kLanes; ++j) step(j, i + j);
    for (; i < len; ++i) step(0, i);
    for (int j = 0; j < kLanes; ++j) {
        add_compensated(t.s1[c], t.s1_err[c], s1[j]);
        t.s1_err[c] += s1e[j];
        add_compensated(t.s2[c], t.s2_err[c], s2[j]);
        t.s2_err[c] += s2e[j];
        t.max_abs[c] = std::max(t.max_abs[c], mx[j]);
        if constexpr (Backward) {
            t.dy_max_abs[c] = std::max(t.dy_max_abs[c], gm[j]);
            add_compensated(t.b1[c], t.b1_err[c], b1[j]);
            t.b1_err[c] += b1e[j];
            add_compensated(t.b2[c], t.b2_err[c], b2[j]);
            t.b2_err[c] += b2e[j];
        }
    }
    t.n[c] += double(len);
}

/// Adds rows [o0, o1) of a channels-last view (inner == 1): one value per channel per row,
/// the loop over channels being the vectorized one.
/// R consecutive rows of a channels-last view (x holds one value per channel per row,
/// rows `stride` apart). The accumulators of a channel are loaded once for the R rows.
/// A function of distinct (restrict) arrays, kept out of line so that the compiler still
/// knows they are distinct and vectorizes the loop over channels.
template <class T, int R, bool Exact>
[[gnu::noinline]] void add_rows_of(const T* __restrict v, std::int64_t stride, std::int64_t C,
                                   const double* __restrict K, double* __restrict s1, double* __restrict s1e,
                                   double* __restrict s2, double* __restrict s2e, double* __restrict mx) {
    for (std::int64_t c = 0; c < C; ++c) {
        double a1 = s1[c], a1e = s1e[c], a2 = s2[c], a2e = s2e[c], m = mx[c];
        double unused_b1 = 0, unused_b1e = 0, unused_b2 = 0, unused_b2e = 0;
        for (int r = 0; r < R; ++r) {
            const double xc = double(v[r * stride + c]);
            const double a = std::abs(xc);
            m = a > m ? a : m;
            accumulate<false, Exact>(xc, 0.0, K[c], a1, a1e, a2, a2e, unused_b1, unused_b1e, unused_b2, unused_b2e);
        }
        s1[c] = a1, s1e[c] = a1e, s2[c] = a2, s2e[c] = a2e, mx[c] = m;
    }
}

/// The backward part of R channels-last rows: Σ dy and Σ dy·(x − K).
template <class T, int R>
[[gnu::noinline]] void add_rows_dy_of(const T* __restrict v, const T* __restrict g, std::int64_t stride,
                                      std::int64_t C, const double* __restrict K, double* __restrict b1,
                                      double* __restrict b1e, double* __restrict b2, double* __restrict b2e,
                                      double* __restrict gm) {
    for (std::int64_t c = 0; c < C; ++c) {
        double c1 = b1[c], c1e = b1e[c], c2 = b2[c], c2e = b2e[c], m = gm[c];
        for (int r = 0; r < R; ++r) {
            const double xc = double(v[r * stride + c]), gc = double(g[r * stride + c]);
            const double a = std::abs(gc);
            m = a > m ? a : m;
            add_compensated(c1, c1e, gc);
            const double d = xc - K[c];
            const double bb = d - xc;
            const double d_err = (xc - (d - bb)) + (-K[c] - bb);
            const double q = gc * d;
            add_compensated(c2, c2e, q);
            c2e += std::fma(gc, d, -q) + gc * d_err;
        }
        b1[c] = c1, b1e[c] = c1e, b2[c] = c2, b2e[c] = c2e, gm[c] = m;
    }
}

/// Adds rows [o0, o1) of a channels-last view (inner == 1) to the sums, four rows a call.
template <class T, bool Backward>
void add_rows(const T* x, const T* dy, std::int64_t C, std::int64_t o0, std::int64_t o1, Sums& t) {
    if (t.n[0] == 0)
        for (std::int64_t c = 0; c < C; ++c) t.K[c] = double(x[o0 * C + c]);
    auto rows = [&](auto r_const, std::int64_t o) {
        constexpr int R = decltype(r_const)::value;
        add_rows_of<T, R, kExactSums<T, Backward>>(x + o * C, C, C, t.K, t.s1, t.s1_err, t.s2, t.s2_err,
                          t.max_abs);
        if constexpr (Backward)
            add_rows_dy_of<T, R>(x + o * C, dy + o * C, C, C, t.K, t.b1, t.b1_err, t.b2,
                                 t.b2_err, t.dy_max_abs);
    };
    std::int64_t o = o0;
    for (; o + 4 <= o1; o += 4) rows(std::integral_constant<int, 4>{}, o);
    for (; o < o1; ++o) rows(std::integral_constant<int, 1>{}, o);
    for (std::int64_t c = 0; c < C; ++c) t.n[c] += double(o1 - o0);
}

/// Pass A over the whole tensor: the Moments of every channel.
template <class T, bool Backward>
std::vector<Moments> channel_moments(const T* x, const T* dy, const Layout& l, const Blocks& blocks, int threads) {
    const auto C = std::size_t(l.channels);
    std::vector<Moments> per_block(std::size_t(blocks.count) * C);
    detail::parallel_for(blocks.count, threads, [&](std::int64_t b0, std::int64_t b1) {
        Sums sums;
        for (std::int64_t b = b0; b < b1; ++b) {
            sums.reset(C, Backward);
            if (blocks.whole_rows && l.inner == 1) {
                const auto [o0, o1] = blocks.rows(b);
                add_rows<T, Backward>(x, dy, l.channels, o0, o1, sums);
            } else {
                blocks.for_runs(b, [&](std::int64_t off, std::int64_t c) {
                    add_run<T, Backward>(x + off, Backward ? dy + off : nullptr, l.inner, std::size_t(c), sums);
                });
            }
            for (std::size_t c = 0; c < C; ++c) per_block[std::size_t(b) * C + c] = Moments::of(sums, c, Backward);
        }
    });
    std::vector<Moments> total(C);
    for (std::int64_t b = 0; b < blocks.count; ++b)
        for (std::size_t c = 0; c < C; ++c) total[c].merge(per_block[std::size_t(b) * C + c]);
    return total;
}

/// Per channel: true when the fast path's double arithmetic cannot overflow, underflow
/// or meet a non-finite value for its data; the other channels are computed by the exact
/// kernel, so that a channel's outputs depend on its own data only.
std::vector<char> in_fast_range(const std::vector<Moments>& ms, bool is_double) {
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

bool all_fast(const std::vector<char>& fast) {
    return std::all_of(fast.begin(), fast.end(), [](char f) { return f != 0; });
}

/// invstd = 1/sqrt(M2/m + eps) for every fast channel; throws for var + eps == 0.
std::vector<dd> inverse_std(const std::vector<Moments>& ms, const std::vector<char>& fast, double eps) {
    std::vector<dd> out(ms.size(), dd{NAN, 0});
    for (std::size_t c = 0; c < ms.size(); ++c) {
        if (!fast[c]) continue;
        const dd var_eps = detail::add(detail::div(ms[c].m2, ms[c].n), eps);
        if (!(var_eps.hi > 0))
            throw InputError(fmt::format("channel {} has zero variance and eps = 0: invstd = 1/sqrt(var + eps) is "
                                         "infinite (use eps > 0)",
                                         c));
        out[c] = detail::rsqrt(var_eps);
    }
    return out;
}

int threads_for(const Layout& l, int threads) {
    return l.size() < kSerialBelow ? 1 : detail::resolve_threads(threads);
}

/// Pass B over outer rows [o0, o1): calls run(offset, c0, count, inner) on runs covering
/// them, in parallel. A run is `count` consecutive channels from c0, each with `inner`
/// values, at `offset` in the whole tensor (inner == 1: a whole row of channels,
/// vectorized across channels). Every output element is computed alone, so the split
/// between threads cannot change a bit.
template <class F>
void for_rows_parallel(const Layout& l, std::int64_t o0, std::int64_t o1, int threads, F&& run) {
    if ((o1 - o0) * l.channels * l.inner < kSerialBelow) threads = 1;
    if (l.inner == 1) {
        detail::parallel_for(o1 - o0, threads, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t o = o0 + b; o < o0 + e; ++o) run(o * l.channels, std::int64_t{0}, l.channels, std::int64_t{1});
        });
    } else {
        const std::int64_t r0 = o0 * l.channels;
        detail::parallel_for((o1 - o0) * l.channels, threads, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t r = r0 + b; r < r0 + e; ++r) run(r * l.inner, r % l.channels, std::int64_t{1}, l.inner);
        });
    }
}

/// dst[o, c, k] = src[o, c, k] for outer rows [o0, o1) of the channels that are not fast;
/// src is the whole tensor, dst holds rows [o0, o1) only.
template <class T>
void take_slow_channels(const Layout& l, const std::vector<char>& fast, const T* src, T* dst, std::int64_t o0,
                        std::int64_t o1) {
    for (std::int64_t o = o0; o < o1; ++o)
        for (std::int64_t c = 0; c < l.channels; ++c)
            if (!fast[c]) {
                const std::int64_t off = (o * l.channels + c) * l.inner;
                std::copy(src + off, src + off + l.inner, dst + (off - o0 * l.channels * l.inner));
            }
}

/// y = β + a·(x − μ), with μ = mh + ml and a = ah + al in double-double: x − μ = s + e
/// exactly (TwoSum), the main product-sum rounded once and the small terms added to it.
template <class T>
inline T normalize(double x, double mh, double ml, double ah, double al, double b) {
    if constexpr (sizeof(T) == 4) { // double's 2^-53 is far below float32's half ulp
        return T(std::fma(ah, (x - mh) - ml, b));
    } else {
        const double s = x - mh;
        const double bb = s - x;
        const double e = ((x - (s - bb)) + (-mh - bb)) - ml;
        return T(std::fma(ah, s, b) + (ah * e + al * s));
    }
}

/// dx = a·(dy − B − (x − μ)·H): d = x − μ = s + e (TwoSum), t = d·H = ph + pl (TwoProd),
/// w = dy − B = wh + wl, inner = w − t = ih + il; every step keeps its error term, so the
/// three terms may cancel to 2^-100 of their size and dx is still right.
template <class T>
inline T input_gradient(double x, double g, double mh, double ml, double ah, double al, double Bh, double Bl,
                        double Hh, double Hl) {
    const double s = x - mh;
    const double sb = s - x;
    const double e = ((x - (s - sb)) + (-mh - sb)) - ml;
    const double ph = s * Hh;
    const double pl = std::fma(s, Hh, -ph) + (s * Hl + e * Hh);
    const double wh = g - Bh;
    const double wb = wh - g;
    const double wl = ((g - (wh - wb)) + (-Bh - wb)) - Bl;
    const double ih = wh - ph;
    const double ib = ih - wh;
    const double il = ((wh - (ih - ib)) + (-ph - ib)) + (wl - pl);
    return T(std::fma(ah, ih, ah * il + al * ih));
}

/// Pass B of forward over one channels-last row (vectorized across channels).
template <class T>
[[gnu::noinline]] void normalize_row(const T* __restrict x, T* __restrict y, std::int64_t C, const double* __restrict mh,
                   const double* __restrict ml, const double* __restrict ah, const double* __restrict al,
                   const double* __restrict b) {
    for (std::int64_t c = 0; c < C; ++c) y[c] = normalize<T>(double(x[c]), mh[c], ml[c], ah[c], al[c], b[c]);
}

/// Pass B of backward over one channels-last row (vectorized across channels).
template <class T>
[[gnu::noinline]] void input_gradient_row(const T* __restrict x, const T* __restrict g, T* __restrict dx, std::int64_t C,
                        const double* __restrict mh, const double* __restrict ml, const double* __restrict ah,
                        const double* __restrict al, const double* __restrict Bh, const double* __restrict Bl,
                        const double* __restrict Hh, const double* __restrict Hl) {
    for (std::int64_t c = 0; c < C; ++c)
        dx[c] = input_gradient<T>(double(x[c]), double(g[c]), mh[c], ml[c], ah[c], al[c], Bh[c], Bl[c], Hh[c], Hl[c]);
}

} // namespace

// ---- the passes ------------------------------------------------------------------------------

template <class T>
ForwardPass<T>::ForwardPass(const T* x, const Layout& l, const T* gamma, const T* beta, double eps, int threads)
    : x_(x), l_(l), threads_(threads_for(l, threads)) {
    assert(l.channels >= 1 && l.per_channel() >= 2 && eps >= 0);
    constexpr bool is_double = sizeof(T) == 8; // the fast path's range check applies to float64
    const std::vector<Moments> ms = channel_moments<T, false>(x, nullptr, l, Blocks(l, sizeof(T)), threads_);
    fast_ = in_fast_range(ms, is_double);
    const std::vector<dd> inv = inverse_std(ms, fast_, eps);

    // Per channel: y = a·(x − μ) + β with a = γ·invstd.
    const std::size_t C = std::size_t(l.channels);
    mean_.resize(C), invstd_.resize(C), coefficients_.resize(5 * C); // μ (hi, lo), a (hi, lo), β
    double *mu_hi = coefficients_.data(), *mu_lo = mu_hi + C, *a_hi = mu_lo + C, *a_lo = a_hi + C, *b = a_lo + C;
    for (std::size_t c = 0; c < C; ++c) {
        mean_[c] = detail::to<T>(ms[c].mean);
        invstd_[c] = detail::to<T>(inv[c]);
        const dd a = detail::mul(inv[c], gamma ? double(gamma[c]) : 1.0);
        mu_hi[c] = ms[c].mean.hi, mu_lo[c] = ms[c].mean.lo;
        a_hi[c] = a.hi, a_lo[c] = a.lo;
        b[c] = beta ? double(beta[c]) : 0.0;
    }
    if (!all_fast(fast_)) { // the channels beyond the fast path's range: the exact kernel
        exact_.resize(std::size_t(l.size()));
        std::vector<T> mean_exact(C), invstd_exact(C);
        detail::forward_exact(x, l, gamma, beta, eps, exact_.data(), mean_exact.data(), invstd_exact.data());
        for (std::size_t c = 0; c < C; ++c)
            if (!fast_[c]) mean_[c] = mean_exact[c], invstd_[c] = invstd_exact[c];
    }
}

template <class T> void ForwardPass<T>::statistics(T* mean, T* invstd) const {
    if (mean) std::copy(mean_.begin(), mean_.end(), mean);
    if (invstd) std::copy(invstd_.begin(), invstd_.end(), invstd);
}

template <class T> void ForwardPass<T>::apply(std::int64_t o0, std::int64_t o1, T* y) const {
    const std::size_t C = std::size_t(l_.channels);
    const double* __restrict pmh = coefficients_.data();
    const double *__restrict pml = pmh + C, *__restrict pah = pml + C, *__restrict pal = pah + C,
                               *__restrict pb = pal + C;
    const std::int64_t base = o0 * l_.channels * l_.inner; // y holds rows [o0, o1)
    // pass B: x and y are (outer, C, inner); a run is `count` channels of `inner` values.
    for_rows_parallel(l_, o0, o1, threads_, [&](std::int64_t off, std::int64_t c0, std::int64_t count, std::int64_t inner) {
        const T* __restrict xs = x_ + off;
        T* __restrict ys = y + (off - base);
        if (inner == 1) { // channels last: vectorized across channels
            normalize_row<T>(xs, ys, count, pmh + c0, pml + c0, pah + c0, pal + c0, pb + c0);
            return;
        }
        for (std::int64_t j = 0; j < count; ++j) {
            const std::int64_t c = c0 + j;
            const double mh = pmh[c], ml = pml[c], ah = pah[c], al = pal[c], bc = pb[c];
            for (std::int64_t k = 0; k < inner; ++k) ys[j * inner + k] = normalize<T>(double(xs[j * inner + k]), mh, ml, ah, al, bc);
        }
    });
    if (!exact_.empty()) take_slow_channels(l_, fast_, exact_.data(), y, o0, o1);
}

template <class T>
BackwardPass<T>::BackwardPass(const T* x, const T* gamma, const T* dy, const Layout& l, double eps, int threads)
    : x_(x), dy_(dy), l_(l), threads_(threads_for(l, threads)) {
    assert(l.channels >= 1 && l.per_channel() >= 2 && eps >= 0);
    constexpr bool is_double = sizeof(T) == 8; // the fast path's range check applies to float64
    const std::vector<Moments> ms = channel_moments<T, true>(x, dy, l, Blocks(l, 2 * sizeof(T)), threads_);
    fast_ = in_fast_range(ms, is_double);
    const std::vector<dd> inv = inverse_std(ms, fast_, eps);

    // Per channel: dx = a·(dy − B − (x − μ)·H) with a = γ·invstd, B = dβ/m, H = invstd·dγ/m.
    const std::size_t C = std::size_t(l.channels);
    const double m = double(l.per_channel());
    dgamma_.resize(C), dbeta_.resize(C), coefficients_.resize(8 * C); // μ, a, B, H (hi, lo each)
    double *mu_hi = coefficients_.data(), *mu_lo = mu_hi + C, *a_hi = mu_lo + C, *a_lo = a_hi + C, *B_hi = a_lo + C,
           *B_lo = B_hi + C, *H_hi = B_lo + C, *H_lo = H_hi + C;
    for (std::size_t c = 0; c < C; ++c) {
        const dd dg = detail::mul(ms[c].sum_dyd, inv[c]); // dγ = invstd·Σ dy·(x − μ)
        dbeta_[c] = detail::to<T>(ms[c].sum_dy);
        dgamma_[c] = detail::to<T>(dg);
        const dd a = detail::mul(inv[c], gamma ? double(gamma[c]) : 1.0);
        const dd B = detail::div(ms[c].sum_dy, m);
        const dd H = detail::div(detail::mul(dg, inv[c]), m);
        mu_hi[c] = ms[c].mean.hi, mu_lo[c] = ms[c].mean.lo;
        a_hi[c] = a.hi, a_lo[c] = a.lo, B_hi[c] = B.hi, B_lo[c] = B.lo, H_hi[c] = H.hi, H_lo[c] = H.lo;
    }
    if (!all_fast(fast_)) { // the channels beyond the fast path's range: the exact kernel
        exact_.resize(std::size_t(l.size()));
        std::vector<T> dgamma_exact(C), dbeta_exact(C);
        detail::backward_exact(x, gamma, dy, l, eps, exact_.data(), dgamma_exact.data(), dbeta_exact.data());
        for (std::size_t c = 0; c < C; ++c)
            if (!fast_[c]) dgamma_[c] = dgamma_exact[c], dbeta_[c] = dbeta_exact[c];
    }
}

template <class T> void BackwardPass<T>::gradients(T* dgamma, T* dbeta) const {
    if (dgamma) std::copy(dgamma_.begin(), dgamma_.end(), dgamma);
    if (dbeta) std::copy(dbeta_.begin(), dbeta_.end(), dbeta);
}

template <class T> void BackwardPass<T>::apply(std::int64_t o0, std::int64_t o1, T* dx) const {
    const std::size_t C = std::size_t(l_.channels);
    const double* __restrict pmh = coefficients_.data();
    const double *__restrict pml = pmh + C, *__restrict pah = pml + C, *__restrict pal = pah + C,
                               *__restrict pBh = pal + C, *__restrict pBl = pBh + C, *__restrict pHh = pBl + C,
                               *__restrict pHl = pHh + C;
    const std::int64_t base = o0 * l_.channels * l_.inner; // dx holds rows [o0, o1)
    // pass B: term 1 − term 2 − term 3 = dy − dβ/m − x̂·dγ/m, times γ·invstd.
    for_rows_parallel(l_, o0, o1, threads_, [&](std::int64_t off, std::int64_t c0, std::int64_t count, std::int64_t inner) {
        const T* __restrict xs = x_ + off;
        const T* __restrict gs = dy_ + off;
        T* __restrict out = dx + (off - base);
        if (inner == 1) { // channels last: vectorized across channels
            input_gradient_row<T>(xs, gs, out, count, pmh + c0, pml + c0, pah + c0, pal + c0, pBh + c0, pBl + c0,
                                  pHh + c0, pHl + c0);
            return;
        }
        for (std::int64_t j = 0; j < count; ++j) {
            const std::int64_t c = c0 + j;
            const double mh = pmh[c], ml = pml[c], ah = pah[c], al = pal[c], Bh = pBh[c], Bl = pBl[c], Hh = pHh[c],
                         Hl = pHl[c];
            for (std::int64_t k = 0; k < inner; ++k) {
                const std::int64_t i = j * inner + k;
                out[i] = input_gradient<T>(double(xs[i]), double(gs[i]), mh, ml, ah, al, Bh, Bl, Hh, Hl);
            }
        }
    });
    if (!exact_.empty()) take_slow_channels(l_, fast_, exact_.data(), dx, o0, o1);
}

template <class T>
void forward(const T* x, const Layout& l, const T* gamma, const T* beta, double eps, T* y, T* mean, T* invstd,
             int threads) {
    const ForwardPass<T> pass(x, l, gamma, beta, eps, threads);
    pass.statistics(mean, invstd);
    pass.apply(0, l.outer, y);
}

template <class T>
void backward(const T* x, const T* gamma, const T* dy, const Layout& l, double eps, T* dx, T* dgamma, T* dbeta,
              int threads) {
    const BackwardPass<T> pass(x, gamma, dy, l, eps, threads);
    pass.gradients(dgamma, dbeta);
    pass.apply(0, l.outer, dx);
}

template class ForwardPass<float>;
template class ForwardPass<double>;
template class BackwardPass<float>;
template class BackwardPass<double>;
template void forward<float>(const float*, const Layout&, const float*, const float*, double, float*, float*, float*,
                             int);
template void forward<double>(const double*, const Layout&, const double*, const double*, double, double*, double*,
                              double*, int);
template void backward<float>(const float*, const float*, const float*, const Layout&, double, float*, float*, float*,
                              int);
template void backward<double>(const double*, const double*, const double*, const Layout&, double, double*, double*,
                               double*, int);

} // namespace bnorm
