// Batch normalization kernels, fast path. One kernel serves every layout: the tensor is
// viewed as (outer, C, inner) (layout.hpp) and cut into blocks of about kBlockBytes, by
// whole rows of outer when they fit, else by (o, c) runs of `inner` values.
//
//   pass A (one read of x, and of dy for backward): per block, sums of x − K, (x − K)²
//          (and dy, dy·(x − K)) around a reference K per channel, compensated; the
//          blocks' sums become Moments merged per channel with Chan's formula in
//          double-double, in block order. Threads take whole blocks: the result does not
//          depend on the thread count. Channels-last blocks are summed by tiles of
//          kTileRows rows, chunk of channels by chunk with the accumulators in
//          registers, the next tile prefetched; runs (NCHW) lane by lane.
//   pass B (one read of x (and dy), one write of y (dx)): elementwise, in parallel.
//
// Precision (docs/derivation.md): error-free transformations (two_sum, two_prod,
// compensated sums) exactly where cancellation can occur: the centring x − mean (mean
// carried in double-double), the sums behind the mean, M2, dβ and dγ, and the three-term
// difference of dx. Pass A first sums with a cheaper kernel, checked channel by channel
// by a certificate: plain double sums for float32 data, biased sums (exact Fast2Sum
// steps against a power-of-two bias, uncentred) for float64; a channel whose certificate
// fails (heavy-tailed data with a dy nearly linear in x, float64 data far from zero
// against its spread) is summed again with the error-free kernels. float64 data whose
// magnitude is outside [2^-400, 2^480], and non-finite data, go to the all-double-double
// kernels of batchnorm_exact.cpp instead.
#include "bnorm/batchnorm.hpp"

#include "batchnorm_exact.hpp"
#include "channel_groups.hpp"
#include "bnorm/detail/kept.hpp"
#include "bnorm/error.hpp"
#include "ddouble.hpp"
#include "parallel.hpp"
#include "simd.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace bnorm {
namespace {

using detail::dd;
using detail::dd_of;
using detail::fused;

constexpr std::int64_t kBlockBytes = 4 * 1024 * 1024; // pass A's unit of parallel work
constexpr std::int64_t kPassBChunk = 64 * 1024;       // values: pass B's unit of parallel work
constexpr std::int64_t kSerialBelow = 1 << 16;       // elements: smaller tensors use 1 thread
constexpr int kLanes = 8;                            // independent accumulators, fixed order
constexpr double kMaxMagnitude = 0x1p480, kMinMagnitude = 0x1p-400; // fast-path range (float64)

// ---- per-channel arrays on cache lines ----------------------------------------------------
//
// The kernels read and write per-channel arrays (sums, coefficients) as vectors of four
// doubles. std::vector's storage is only 16-byte aligned, so half of those vectors would
// straddle two cache lines, each access then costing two: float32 backward pass A spent
// twice as long folding its partial sums (7.7 against 4.4 cycles per vector of four
// channels, in L1). So every such array starts on a line: `count` arrays of C doubles,
// padded(C) apart, from the first line of a vector's storage.

constexpr std::size_t kLineDoubles = 64 / sizeof(double);
constexpr std::size_t padded(std::size_t C) { return (C + kLineDoubles - 1) / kLineDoubles * kLineDoubles; }
/// The first cache line inside storage p (doubles are 8-byte aligned: it is within 7 of p).
template <class P> P first_line_of(P p) { return p + (-reinterpret_cast<std::uintptr_t>(p) % 64) / sizeof(double); }
template <class V> double* first_line(V& v) { return first_line_of(v.data()); }
template <class V> const double* first_line(const V& v) { return first_line_of(v.data()); }
/// Sizes v (a vector of doubles) for `count` line-aligned arrays of C doubles (zeros) and
/// returns the first.
template <class V> double* line_arrays(V& v, std::size_t count, std::size_t C) {
    v.assign(count * padded(C) + kLineDoubles - 1, 0.0);
    return first_line(v);
}

// ---- one element's contribution to a tile's sums ------------------------------------------

/// sum += v, keeping the rounding error in err (TwoSum). On doubles, or lane by lane on
/// v4d with the same operations.
template <class D> inline void add_compensated(D& sum, D& err, D v) {
    const D s = sum + v;
    const D bb = s - sum;
    err += (sum - (s - bb)) + (v - bb);
    sum = s;
}

/// a − b, rounded once. OnFma, on vectors with FMA, it is computed as fma(b, −1, a): the
/// same bits, on the multiply-add units. The error-free sums are otherwise nearly all
/// additions, which get half of the floating-point units (Zen 4: two adders, two FMA
/// units): moving some of them measured 16% faster for forward float64 data in cache,
/// and 3-15% on 67 MB; not faster for backward, whose sums wait longer on memory.
template <bool OnFma> inline double minus(double a, double b) { return a - b; }
template <bool OnFma> inline detail::simd::v4d minus(detail::simd::v4d a, detail::simd::v4d b) {
#if defined(__FMA__)
    if constexpr (OnFma) return _mm256_fmadd_pd(b, _mm256_set1_pd(-1.0), a);
#endif
    return a - b;
}
template <bool OnFma> inline detail::simd::v8d minus(detail::simd::v8d a, detail::simd::v8d b) {
#if defined(__AVX512F__)
    if constexpr (OnFma) return _mm512_fmadd_pd(b, detail::simd::v8d{} - 1.0, a);
#endif
    return a - b;
}
/// Lane-wise max and min (std::max's and std::min's choice: the first when either is NaN).
template <class D> inline D larger(D a, D b) { return a < b ? b : a; }
template <class D> inline D smaller(D a, D b) { return b < a ? b : a; }

inline double magnitude(double a) { return std::abs(a); }
inline detail::simd::v4d magnitude(detail::simd::v4d a) { return detail::simd::abs(a); }
inline detail::simd::v8d magnitude(detail::simd::v8d a) { return detail::simd::abs(a); }

/// Adds x (and its dy g) to error-free sums around K, and to the largest magnitudes:
/// x − K = d + d_err (TwoSum), d² = p + p_err and g·d = q + q_err (TwoProd), sums
/// compensated. That keeps the mean, M2 and Σ dy·(x − mean) to ~2^-100 relative, which
/// float64 outputs need, and which dx needs in any dtype when its three terms cancel (dy
/// nearly linear in x): heavy-tailed data makes them many orders larger than dx itself.
/// On doubles, or lane by lane on v4d with the same operations, so that a channel gets
/// the same bits in a vector lane as alone.
template <bool Backward, class D>
inline void accumulate_exact(D x, D g, D K, D& s1, D& s1e, D& s2, D& s2e, D& mx, D& b1, D& b1e, D& b2, D& b2e,
                             D& gm, D& b3, D& b3e) {
    const D a = magnitude(x);
    mx = a > mx ? a : mx;
    const D d = x - K;
    const D bb = minus<!Backward>(d, x);
    const D d_err = (x - minus<!Backward>(d, bb)) + (-K - bb);
    D s = s1 + d, sb = minus<!Backward>(s, s1);
    s1e += (s1 - minus<!Backward>(s, sb)) + minus<!Backward>(d, sb);
    s1 = s;
    s1e += d_err;
    const D p = d * d;
    s = s2 + p, sb = minus<!Backward>(s, s2);
    s2e += (s2 - minus<!Backward>(s, sb)) + minus<!Backward>(p, sb);
    s2 = s;
    s2e += fused(d, d, -p) + D(2 * d) * d_err;
    if constexpr (Backward) {
        const D ga = magnitude(g);
        gm = ga > gm ? ga : gm;
        s = b1 + g, sb = s - b1;
        b1e += (b1 - (s - sb)) + (g - sb);
        b1 = s;
        const D q = g * d;
        s = b2 + q, sb = s - b2;
        b2e += (b2 - (s - sb)) + (q - sb);
        b2 = s;
        b2e += fused(g, d, -q) + g * d_err;
        const D p3 = g * g; // Σ dy², compensated, for pass_b_enough
        s = b3 + p3, sb = s - b3;
        b3e += ((b3 - (s - sb)) + (p3 - sb)) + fused(g, g, -p3);
        b3 = s;
    }
}

// ---- per-channel statistics as structures of arrays ----------------------------------------

/// Sums over some values of every channel, struct-of-arrays so that loops over channels
/// vectorize, around a reference K per channel (any of the channel's values: the sums are
/// error-free, so a poor reference costs at most log2(count) of the ~106 bits):
/// s1 = Σ(x − K), s2 = Σ(x − K)², and for backward b1 = Σ dy, b2 = Σ dy·(x − K), each with
/// its compensation term. The plain kernels (float32) leave the compensation terms at
/// zero and also sum b3 = Σ dy², which bounds their rounding errors (certificates below);
/// so do the biased kernels, which also count their folds. The error-free kernels sum b3
/// compensated (b3_err), for pass_b_enough.
struct Sums {
    double *n, *K, *s1, *s1_err, *s2, *s2_err, *max_abs, *folds, *b1, *b1_err, *b2, *b2_err, *dy_max_abs, *b3, *b3_err;
    double* plain; // room for the plain kernels' partial sums: 2 or 5 arrays, padded(C) apart
    void reset(std::size_t C, bool backward) {
        const std::size_t stride = padded(C); // each array on a cache line
        double* p = line_arrays(storage_, backward ? 20 : 10, C); // one allocation, reused across blocks
        for (double** v : {&n, &K, &s1, &s1_err, &s2, &s2_err, &max_abs, &folds}) *v = p, p += stride;
        for (double** v : {&b1, &b1_err, &b2, &b2_err, &dy_max_abs, &b3, &b3_err})
            *v = backward ? (p += stride) - stride : nullptr;
        plain = p;
    }

private:
    std::vector<double, detail::Kept<double>> storage_;
};

/// Per-channel set-up, four channels at a time: lanes<D>(p, c) is p[c] as a double, or
/// p[c..c+3] as the lanes of a v4d (in double); lane(v, j) is lane j of v (v itself for a double).
/// Every function below that takes a D does the same operations on a double as on each
/// lane of a v4d, so a channel's bits do not depend on how it was grouped.
template <class D, class T> D lanes(const T* p, std::size_t c) {
    if constexpr (std::is_same_v<D, double>) return double(p[c]);
    else if constexpr (std::is_same_v<D, detail::simd::v8d>) return detail::simd::load8(p + c);
    else return detail::simd::load(p + c);
}
/// p[c] = v (p[c..c+3] = the lanes of v).
template <class D> void put(double* p, std::size_t c, D v) {
    if constexpr (std::is_same_v<D, double>) p[c] = v;
    else detail::simd::store(p + c, v);
}
inline double lane(double v, int) { return v; }
inline double lane(detail::simd::v4d v, int j) { return v[j]; }
inline double lane(detail::simd::v8d v, int j) { return v[j]; }
template <class D> constexpr int kLanesOf = int(sizeof(D) / sizeof(double));
template <class D> using mask_of = decltype(D{} < D{}); // bool, or a vector of 0 / −1
/// Lane-wise logic on masks: && and || for bool, & and | on the lanes of a vector mask.
template <class M, class... Ms> M every(M m, Ms... ms) {
    if constexpr (std::is_same_v<M, bool>) return (m && ... && ms);
    else return (m & ... & ms);
}
template <class M> M either(M a, M b) {
    if constexpr (std::is_same_v<M, bool>) return a || b;
    else return a | b;
}
inline bool ok_lane(bool m, int) { return m; }
inline bool ok_lane(decltype(detail::simd::v4d{} < detail::simd::v4d{}) m, int j) { return m[j] != 0; }
inline bool ok_lane(decltype(detail::simd::v8d{} < detail::simd::v8d{}) m, int j) { return m[j] != 0; }

/// Calls f(c, D{}) for every channel c in [0, C): with D = v4d for the groups of four
/// channels c..c+3 where lanes_ok(c), else with D = double one channel at a time.
template <class Ok, class F> void for_channel_lanes(std::size_t C, Ok&& lanes_ok, F&& f) {
    constexpr auto W = std::size_t(detail::simd::kWidth);
    std::size_t c = 0;
#if defined(__AVX512F__) // eight channels at a time where both fours may go as lanes
    for (; c + 2 * W <= C && lanes_ok(c) && lanes_ok(c + W); c += 2 * W) f(c, detail::simd::v8d{});
#endif
    for (; c + W <= C; c += W) {
        if (lanes_ok(c)) f(c, detail::simd::v4d{});
        else
            for (std::size_t j = c; j < c + W; ++j) f(j, 0.0);
    }
    for (; c < C; ++c) f(c, 0.0);
}

/// A channel's statistics in double-double: count, mean, M2 = Σ(x − mean)², and for
/// backward Σ dy and Σ dy·(x − mean). Blocks are merged with Chan, Golub & LeVeque's
/// pairwise formula, each centred on its own mean. D = v4d holds four channels.
///
/// For the certificates it also carries: sq = Σ over blocks of Σ(x − K)² (≥ M2),
/// dy_sq = Σ dy² (plain in the fast kernels, compensated in the error-free ones, merged in
/// double-double), and rel = the largest relative rounding bound γ of a block's plain
/// accumulations (0 when they are error-free); dy_sq's own bound depends on the kernels
/// only (dy_squares_rel). max_abs and dy_max_abs are the largest |x| and |dy| from the
/// biased and error-free kernels; the plain ones leave them 0.
template <class D> struct MomentsOf {
    D n{};
    dd_of<D> mean{}, m2{}, sum_dy{}, sum_dyd{};
    D max_abs{}, dy_max_abs{};
    dd_of<D> dy_sq{};
    D sq{}, rel{};

    /// Calls f(a's number, b's numbers...) for each number of a MomentsOf a and others b.
    template <class F, class A, class... B> static void each_number(F&& f, A& a, B&... b) {
        f(a.n, b.n...), f(a.mean.hi, b.mean.hi...), f(a.mean.lo, b.mean.lo...), f(a.m2.hi, b.m2.hi...);
        f(a.m2.lo, b.m2.lo...), f(a.sum_dy.hi, b.sum_dy.hi...), f(a.sum_dy.lo, b.sum_dy.lo...);
        f(a.sum_dyd.hi, b.sum_dyd.hi...), f(a.sum_dyd.lo, b.sum_dyd.lo...), f(a.max_abs, b.max_abs...);
        f(a.dy_max_abs, b.dy_max_abs...), f(a.sq, b.sq...), f(a.dy_sq.hi, b.dy_sq.hi...), f(a.dy_sq.lo, b.dy_sq.lo...);
        f(a.rel, b.rel...);
    }

    /// Channels m[0, kLanesOf<D>) as one MomentsOf<D>.
    static MomentsOf gather(const MomentsOf<double>* m) {
        if constexpr (std::is_same_v<D, double>) return *m;
        else {
            MomentsOf r;
            [&]<std::size_t... J>(std::index_sequence<J...>) {
                each_number([](D& v, auto... a) { v = D{a...}; }, r, m[J]...);
            }(std::make_index_sequence<kLanesOf<D>>{});
            return r;
        }
    }

    /// The inverse: this to m[0, kLanesOf<D>).
    void scatter(MomentsOf<double>* m) const {
        if constexpr (std::is_same_v<D, double>) *m = *this;
        else
            [&]<std::size_t... J>(std::index_sequence<J...>) {
                each_number([](const D& v, auto&... a) { ((a = v[J]), ...); }, *this, m[J]...);
            }(std::make_index_sequence<kLanesOf<D>>{});
    }

    /// The moments of channel c (c..c+3 for v4d) of a block's sums, whose count is not 0;
    /// rel is the relative bound of the sums' errors (0 for the error-free kernels).
    static MomentsOf of(const Sums& t, std::size_t c, bool backward, D rel) {
        using detail::add, detail::div, detail::mul, detail::sub, detail::two_sum;
        MomentsOf m;
        m.n = lanes<D>(t.n, c);
        m.rel = rel;
        m.sq = lanes<D>(t.s2, c);
        if (backward) m.dy_sq = two_sum(lanes<D>(t.b3, c), lanes<D>(t.b3_err, c));
        const D K = lanes<D>(t.K, c);
        const dd_of<D> s1 = two_sum(lanes<D>(t.s1, c), lanes<D>(t.s1_err, c));
        const dd_of<D> shift = div(s1, m.n); // mean − K
        m.mean = add(shift, K);
        m.m2 = sub(two_sum(lanes<D>(t.s2, c), lanes<D>(t.s2_err, c)), mul(s1, shift));
        m.max_abs = lanes<D>(t.max_abs, c);
        if (backward) {
            // Σ dy·(x − mean) = Σ dy·(x − K) − (mean − K)·Σ dy
            m.sum_dy = two_sum(lanes<D>(t.b1, c), lanes<D>(t.b1_err, c));
            m.sum_dyd = sub(two_sum(lanes<D>(t.b2, c), lanes<D>(t.b2_err, c)), mul(m.sum_dy, shift));
            m.dy_max_abs = lanes<D>(t.dy_max_abs, c);
        }
        return m;
    }

    /// Adds the moments o of other values of the same channel (D = double; either may be
    /// empty).
    void merge(const MomentsOf& o) {
        if (o.n == 0) return;
        if (n == 0) {
            *this = o;
            return;
        }
        combine(o);
    }

    /// merge when neither is empty (no lane, for v4d): Chan, Golub & LeVeque's pairwise
    /// formula, each side centred on its own mean; lane by lane the operations of a double.
    /// Not inlined: in its callers, it made GCC inline less elsewhere, and the tiny (64, 16)
    /// float32 forward, which never merges, took 1.30 µs instead of 1.13.
    [[gnu::noinline]] void combine(const MomentsOf& o) {
        using detail::add, detail::div, detail::mul, detail::sub;
        max_abs = larger(max_abs, o.max_abs), dy_max_abs = larger(dy_max_abs, o.dy_max_abs);
        rel = larger(rel, o.rel);
        sq += o.sq, dy_sq = add(dy_sq, o.dy_sq);
        const D total = n + o.n; // exact: counts are far below 2^53
        const dd_of<D> delta = sub(o.mean, mean);
        const dd_of<D> new_mean = add(mean, div(mul(delta, o.n), total));
        const dd_of<D> between = div(mul(mul(delta, delta), D(n * o.n)), total);
        m2 = add(add(m2, o.m2), between);
        // Σ dy·(x − μ) = Σ_a dy·(x − μ_a) + (μ_a − μ)·Σ_a dy + Σ_o dy·(x − μ_o) + (μ_o − μ)·Σ_o dy
        sum_dyd = add(add(sum_dyd, mul(sub(mean, new_mean), sum_dy)),
                      add(o.sum_dyd, mul(sub(o.mean, new_mean), o.sum_dy)));
        sum_dy = add(sum_dy, o.sum_dy);
        mean = new_mean;
        n = total;
    }
};
using Moments = MomentsOf<double>;
/// Per-channel (or per block and channel) Moments, in kept storage (bnorm/detail/kept.hpp).
using MomentsVector = std::vector<Moments, detail::Kept<Moments>>;

// ---- blocks: the units of parallel work -------------------------------------------------

/// The tensor (outer, C, inner) is cut into blocks of about kBlockBytes, by whole rows of
/// outer when a row (C·inner values) fits, else by (o, c) runs of `inner` values. The cut
/// depends only on the shape and the element size, never on the thread count.
///
/// A group of channels of a larger tensor (l.channels of its `whole`, x pointing at the
/// first of them, rows whole·inner values apart) is cut as the larger tensor is, which
/// must then be by whole rows: each channel gets the same blocks, and so the same bits.
struct Blocks {
    Layout l;
    std::int64_t whole;  // the channels between one row of outer and the next
    bool whole_rows;
    std::int64_t per_block = 0, count = 0; // rows of outer, or (o, c) runs, per block

    Blocks(const Layout& layout, std::size_t bytes_per_element, std::int64_t whole_channels = 0)
        : l(layout), whole(whole_channels ? whole_channels : layout.channels) {
        const std::int64_t budget = std::max<std::int64_t>(1, kBlockBytes / std::int64_t(bytes_per_element));
        const std::int64_t row = whole * l.inner;
        whole_rows = row <= budget;
        assert(whole_rows || whole == l.channels);
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
                for (std::int64_t c = 0; c < l.channels; ++c) run((o * whole + c) * l.inner, c);
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
           b2[kLanes] = {}, b2e[kLanes] = {}, mx[kLanes] = {}, gm[kLanes] = {}, b3[kLanes] = {}, b3e[kLanes] = {};
    auto step = [&](int j, std::int64_t i) {
        const double xi = double(v[i]);
        const double gi = Backward ? double(g[i]) : 0.0;
        accumulate_exact<Backward>(xi, gi, K, s1[j], s1e[j], s2[j], s2e[j], mx[j], b1[j],
                                                            b1e[j], b2[j], b2e[j], gm[j], b3[j], b3e[j]);
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
            add_compensated(t.b3[c], t.b3_err[c], b3[j]);
            t.b3_err[c] += b3e[j];
        }
    }
    t.n[c] += double(len);
}

// ---- plain sums (float32 data) ------------------------------------------------------------
//
// float32 values are exact in double, and so (nearly always) are x − K, (x − K)² and
// dy·(x − K): the only rounding is in the additions. The plain kernels add at most
// kPlainRun terms into one double accumulator, then fold it into the compensated sums of
// the block, so a plain sum is off by at most γ(kPlainRun + 2)·Σ|terms| (Higham, 2002,
// §4.2). The certificates below turn that into a bound on every output, and channels
// whose bound is not small enough are summed again with the error-free kernels above.

// 32, not 64: with 64 the folds cost half as much (float32 backward pass A in L2, 4.2 →
// 3.8 cycles per vector), but the bound doubles, and so does the chance that a channel
// whose dγ is a tiny fraction of its terms fails its certificate and sends pass A and B
// to the slow kernels (one channel of 64 in a random (100352, 64) tensor: 2.7 → 4.0 ms).
constexpr std::int64_t kPlainRun = 32; // terms per plain accumulator before it is folded

/// γ(k) = k·u/(1 − k·u): the relative bound of k roundings.
constexpr double gamma_of(std::int64_t k) { return double(k) * 0x1p-53 / (1 - double(k) * 0x1p-53); }
constexpr double kPlainGamma = gamma_of(kPlainRun + 2 * detail::simd::kWidth + 2);

/// Folds a plain partial sum into a compensated one.
inline void fold(double& sum, double& err, double& plain) {
    add_compensated(sum, err, plain);
    plain = 0;
}

constexpr std::int64_t kTileRows = 16; // channels-last rows summed with the accumulators in registers
static_assert(kPlainRun % kTileRows == 0, "a plain accumulator is folded after whole tiles");

/// Asks for the line of p[n] in L1 (Locality 3) or L2 (2) soon. p[n] may lie past the end
/// of the array: a prefetch never faults, and the address is formed as an integer, not as
/// a pointer past the array.
template <int Locality, class T> inline void prefetch_line(const T* p, std::int64_t n) {
    const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(p) + std::uintptr_t(n) * sizeof(T);
    __builtin_prefetch(reinterpret_cast<const void*>(at), 0, Locality);
}
template <class T> inline void prefetch_l1(const T* p, std::int64_t n) { prefetch_line<3>(p, n); }
template <class T> inline void prefetch_l2(const T* p, std::int64_t n) { prefetch_line<2>(p, n); }

/// Software prefetch of the next tile, a chunk's row per step, in address order. The
/// tile kernel walks a tile channel chunk by channel chunk, down the rows, which the
/// hardware prefetchers do not follow; this streams the next tile in meanwhile, into L2
/// (prefetching into L1 evicts the tile being summed: measured 2.3 times slower).
template <class T> struct TilePrefetch {
    const T *x = nullptr, *g = nullptr; // the next tile of x and dy, or null
    std::int64_t at = 0, size = 0;     // the next element to prefetch, the tile's size
    /// The tile of up to `rows` rows from row `next` of x (and dy, when not null), rows
    /// `stride` values apart, when there is one before o1 and it is contiguous (whole rows:
    /// count == stride); else none.
    static TilePrefetch next_tile(const T* x, const T* dy, std::int64_t stride, std::int64_t count,
                                  std::int64_t next, std::int64_t o1, std::int64_t rows) {
        TilePrefetch p;
        if (next < o1 && count == stride) {
            p.x = x + next * stride, p.g = dy ? dy + next * stride : nullptr;
            p.size = std::min(rows, o1 - next) * stride;
        }
        return p;
    }
    /// Prefetches the lines of the next n elements. A step shorter than a line asks for
    /// the line of its first element, again at each step that falls in it: a few
    /// instructions, where finding the steps that start a line took a dozen (float32
    /// backward, dy = 0.5 + 2x, in cache: pass A's rows kernel 4% faster). The addresses
    /// are formed as integers: a step may reach past the tile, and a prefetch never faults.
    template <std::int64_t n> void step() {
        constexpr std::int64_t per_line = 64 / std::int64_t(sizeof(T));
        if (at < size) {
            for (std::int64_t i = 0; i < std::max(n / per_line, std::int64_t(1)); ++i) { // (unrolled)
                prefetch_l2(x, at + i * per_line);
                if (g) prefetch_l2(g, at + i * per_line);
            }
        }
        at += n;
    }
};

/// Channels [0, V·lanes of D) of `rows` channels-last rows (`C` values apart) added to the
/// plain sums around K: p1 += x − K, p2 += (x − K)², and for backward q1 += dy,
/// q2 += dy·(x − K), q3 += dy². The accumulators stay in registers across the rows.
/// D = v4d or v8d: the same operations lane by lane.
template <class D, class T, bool Backward, int V>
inline void add_chunk_plain(const T* __restrict x, const T* __restrict g, std::int64_t C, std::int64_t rows,
                            const double* __restrict K, double* __restrict p1, double* __restrict p2,
                            double* __restrict q1, double* __restrict q2, double* __restrict q3,
                            TilePrefetch<T>& prefetch) {
    using detail::simd::fma;
    constexpr int L = kLanesOf<D>;
    auto at = [](int j) { return std::size_t(j * L); };
    D k[V], a1[V], a2[V], b1[V], b2[V], b3[V];
#pragma GCC unroll 4
    for (int j = 0; j < V; ++j) {
        k[j] = lanes<D>(K, at(j)), a1[j] = lanes<D>(p1, at(j)), a2[j] = lanes<D>(p2, at(j));
        if constexpr (Backward)
            b1[j] = lanes<D>(q1, at(j)), b2[j] = lanes<D>(q2, at(j)), b3[j] = lanes<D>(q3, at(j));
    }
    for (std::int64_t r = 0; r < rows; ++r) {
        prefetch.template step<V * L>();
#pragma GCC unroll 4
        for (int j = 0; j < V; ++j) {
            const D d = lanes<D>(x + r * C, at(j)) - k[j];
            a1[j] += d;
            a2[j] = fma(d, d, a2[j]);
            if constexpr (Backward) {
                const D gv = lanes<D>(g + r * C, at(j));
                b1[j] += gv;
                b2[j] = fma(gv, d, b2[j]);
                b3[j] = fma(gv, gv, b3[j]);
            }
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < V; ++j) {
        put(p1, at(j), a1[j]), put(p2, at(j), a2[j]);
        if constexpr (Backward) put(q1, at(j), b1[j]), put(q2, at(j), b2[j]), put(q3, at(j), b3[j]);
    }
}

/// `rows` channels-last rows of C channels (a tile) added to the plain sums, chunk of
/// channels by chunk of channels (as many as the registers hold the accumulators of),
/// then the last channels one by one: each channel sees the same operations in the same
/// order whichever way it is reached.
template <class T, bool Backward>
[[gnu::noinline]] void add_tile_plain(const T* __restrict x, const T* __restrict g, std::int64_t C,
                                      std::int64_t rows, TilePrefetch<T> prefetch, const double* __restrict K,
                                      double* __restrict p1, double* __restrict p2, double* __restrict q1,
                                      double* __restrict q2, double* __restrict q3) {
    using namespace detail::simd;
    std::int64_t c = 0;
    auto chunk = [&](auto d_type, auto v_const) {
        using D = decltype(d_type);
        constexpr int W = decltype(v_const)::value;
        add_chunk_plain<D, T, Backward, W>(x + c, Backward ? g + c : nullptr, C, rows, K + c, p1 + c, p2 + c,
                                           Backward ? q1 + c : nullptr, Backward ? q2 + c : nullptr,
                                           Backward ? q3 + c : nullptr, prefetch);
        c += W * kLanesOf<D>;
    };
#if defined(__AVX512F__)
    // AVX-512, forward: chunks of four vectors of eight channels (v8d), half the
    // instructions of v4d for the same arithmetic. Pass A, one thread, 5 runs interleaved
    // with the v4d chunks: NHWC (32, 56, 56, 64) 1.46-1.74 → 1.37-1.48 ms, 65536 x 256
    // 3.69-3.96 → 3.47-3.74 ms. Two vectors measured no faster. Backward with two (NHWC
    // 2.72-2.88 → 2.57-2.84 ms) took the tiny (64, 16) backward from 1.62-1.68 to
    // 1.67-1.73 µs, and keeps v4d. On Ice Lake too (with pass B's rows of 8 or 16
    // channels in eight lanes): large tensors unchanged, the tiny backward 2.27 → 2.33-2.51
    // µs in the benchmark.
    if constexpr (!Backward)
        while (c + 32 <= C) chunk(v8d{}, std::integral_constant<int, 4>{});
#endif
    // V·(2 or 5) accumulators and V references in registers. Forward stays at 4 with 32
    // registers: 8 measured twice as slow.
    constexpr int V = Backward ? (kRegisters == 32 ? 4 : 2) : 4;
    while (c + V * kWidth <= C) chunk(v4d{}, std::integral_constant<int, V>{});
    while (c + kWidth <= C) chunk(v4d{}, std::integral_constant<int, 1>{});
    for (; c < C; ++c) // the same operations, one lane
        for (std::int64_t r = 0; r < rows; ++r) {
            const double d = double(x[r * C + c]) - K[c];
            p1[c] += d;
            p2[c] = std::fma(d, d, p2[c]);
            if constexpr (Backward) {
                const double gc = double(g[r * C + c]);
                q1[c] += gc;
                q2[c] = std::fma(gc, d, q2[c]);
                q3[c] = std::fma(gc, gc, q3[c]);
            }
        }
}

/// Folds plain per-channel sums into compensated ones (add_compensated, lane by lane).
[[gnu::noinline]] void fold_rows(std::int64_t C, double* __restrict sum, double* __restrict err,
                                 double* __restrict plain) {
    using namespace detail::simd;
    std::int64_t c = 0;
    for (; c + kWidth <= C; c += kWidth) {
        const v4d a = load(sum + c), v = load(plain + c);
        const v4d s = a + v, bb = s - a;
        store(err + c, load(err + c) + ((a - (s - bb)) + (v - bb)));
        store(sum + c, s);
        store(plain + c, splat(0));
    }
    for (; c < C; ++c) fold(sum[c], err[c], plain[c]);
}

/// Adds rows [o0, o1) of a channels-last view (inner == 1) to the sums with plain kernels.
template <class T, bool Backward>
void add_rows_plain(const T* x, const T* dy, std::int64_t C, std::int64_t o0, std::int64_t o1, Sums& t) {
    const auto n = std::size_t(C), stride = padded(n);
    double *p1 = t.plain, *p2 = p1 + stride, *q1 = Backward ? p2 + stride : nullptr,
           *q2 = Backward ? q1 + stride : nullptr, *q3 = Backward ? q2 + stride : nullptr;
    for (std::int64_t c = 0; c < C; ++c) t.K[c] = double(x[o0 * C + c]);
    auto fold_all = [&] {
        fold_rows(C, t.s1, t.s1_err, p1);
        fold_rows(C, t.s2, t.s2_err, p2);
        if constexpr (Backward) {
            fold_rows(C, t.b1, t.b1_err, q1);
            fold_rows(C, t.b2, t.b2_err, q2);
            fold_rows(C, t.b3, t.b3_err, q3);
        }
    };
    for (std::int64_t o = o0; o < o1; o += kTileRows) {
        const std::int64_t rows = std::min(kTileRows, o1 - o), next = o + rows;
        const auto prefetch = TilePrefetch<T>::next_tile(x, Backward ? dy : nullptr, C, C, next, o1, kTileRows);
        add_tile_plain<T, Backward>(x + o * C, Backward ? dy + o * C : nullptr, C, rows, prefetch, t.K, p1, p2, q1,
                                    q2, q3);
        if ((next - o0) % kPlainRun == 0) fold_all();
    }
    if ((o1 - o0) % kPlainRun != 0) fold_all(); // else folded just now (folding zeros changes no bit)
    for (std::int64_t c = 0; c < C; ++c) t.n[c] += double(o1 - o0);
}

// ---- error-free sums over channels-last tiles (float64 data, and uncertified channels) -----

/// Channels [c, c + V·kWidth) of `rows` channels-last rows (`stride` values apart) added
/// to the error-free sums t, the accumulators in registers across the rows.
template <class T, bool Backward, int V>
inline void add_chunk_exact(const T* __restrict x, const T* __restrict g, std::int64_t stride, std::int64_t rows,
                            std::size_t c, Sums& t, TilePrefetch<T>& prefetch) {
    using namespace detail::simd;
    v4d k[V], s1[V], s1e[V], s2[V], s2e[V], mx[V], b1[V], b1e[V], b2[V], b2e[V], gm[V], b3[V], b3e[V];
    auto at = [&](const double* p, int j) { return p + c + std::size_t(j * kWidth); };
#pragma GCC unroll 4
    for (int j = 0; j < V; ++j) {
        k[j] = load(at(t.K, j)), s1[j] = load(at(t.s1, j)), s1e[j] = load(at(t.s1_err, j));
        s2[j] = load(at(t.s2, j)), s2e[j] = load(at(t.s2_err, j)), mx[j] = load(at(t.max_abs, j));
        if constexpr (Backward) {
            b1[j] = load(at(t.b1, j)), b1e[j] = load(at(t.b1_err, j)), b2[j] = load(at(t.b2, j));
            b2e[j] = load(at(t.b2_err, j)), gm[j] = load(at(t.dy_max_abs, j));
            b3[j] = load(at(t.b3, j)), b3e[j] = load(at(t.b3_err, j));
        }
    }
    for (std::int64_t r = 0; r < rows; ++r) {
        prefetch.template step<V * kWidth>();
#pragma GCC unroll 4
        for (int j = 0; j < V; ++j) {
            const v4d xv = load(x + r * stride + j * kWidth);
            const v4d gv = Backward ? load(g + r * stride + j * kWidth) : v4d{};
            accumulate_exact<Backward>(xv, gv, k[j], s1[j], s1e[j], s2[j], s2e[j], mx[j],
                                                                b1[j], b1e[j], b2[j], b2e[j], gm[j], b3[j], b3e[j]);
        }
    }
    auto put = [&](double* p, int j, v4d v) { store(p + c + std::size_t(j * kWidth), v); };
#pragma GCC unroll 4
    for (int j = 0; j < V; ++j) {
        put(t.s1, j, s1[j]), put(t.s1_err, j, s1e[j]), put(t.s2, j, s2[j]), put(t.s2_err, j, s2e[j]);
        put(t.max_abs, j, mx[j]);
        if constexpr (Backward) {
            put(t.b1, j, b1[j]), put(t.b1_err, j, b1e[j]), put(t.b2, j, b2[j]), put(t.b2_err, j, b2e[j]);
            put(t.dy_max_abs, j, gm[j]), put(t.b3, j, b3[j]), put(t.b3_err, j, b3e[j]);
        }
    }
}

/// `rows` channels-last rows of `count` channels (a tile, rows `stride` values apart)
/// added to the error-free sums: chunks of channels, then the last ones one by one.
template <class T, bool Backward>
[[gnu::noinline]] void add_tile_exact(const T* __restrict x, const T* __restrict g, std::int64_t stride,
                                      std::int64_t count, std::int64_t rows, TilePrefetch<T> prefetch, Sums& t) {
    using namespace detail::simd;
    // 6 or 11 registers per vector of channels, and temporaries: wider chunks were not
    // faster even with 32 registers
    constexpr int V = Backward ? 1 : 2;
    std::size_t c = 0;
    const auto C = std::size_t(count);
    auto dy_at = [&](std::size_t i) { return Backward ? g + i : nullptr; };
    for (; c + V * kWidth <= C; c += V * kWidth)
        add_chunk_exact<T, Backward, V>(x + c, dy_at(c), stride, rows, c, t, prefetch);
    for (; c + kWidth <= C; c += kWidth) add_chunk_exact<T, Backward, 1>(x + c, dy_at(c), stride, rows, c, t, prefetch);
    for (; c < C; ++c) { // the same operations, one lane
        double b1 = 0, b1e = 0, b2 = 0, b2e = 0, gm = 0, b3 = 0, b3e = 0;
        if constexpr (Backward) {
            b1 = t.b1[c], b1e = t.b1_err[c], b2 = t.b2[c], b2e = t.b2_err[c], gm = t.dy_max_abs[c];
            b3 = t.b3[c], b3e = t.b3_err[c];
        }
        for (std::int64_t r = 0; r < rows; ++r) {
            const double xi = double(x[r * stride + std::int64_t(c)]);
            const double gi = Backward ? double(g[r * stride + std::int64_t(c)]) : 0.0;
            accumulate_exact<Backward>(xi, gi, t.K[c], t.s1[c], t.s1_err[c], t.s2[c],
                                                                t.s2_err[c], t.max_abs[c], b1, b1e, b2, b2e, gm, b3,
                                                                b3e);
        }
        if constexpr (Backward) {
            t.b1[c] = b1, t.b1_err[c] = b1e, t.b2[c] = b2, t.b2_err[c] = b2e, t.dy_max_abs[c] = gm;
            t.b3[c] = b3, t.b3_err[c] = b3e;
        }
    }
}

/// Adds rows [o0, o1) of a channels-last view (inner == 1) to the error-free sums:
/// `count` channels, from x[0] and dy[0] in each row, rows `stride` values apart. Each
/// channel sees the same operations whatever `count` is, so one channel summed alone
/// (certified_moments) gets the same bits as in a whole row.
template <class T, bool Backward>
void add_rows(const T* x, const T* dy, std::int64_t stride, std::int64_t count, std::int64_t o0, std::int64_t o1,
              Sums& t) {
    if (t.n[0] == 0)
        for (std::int64_t c = 0; c < count; ++c) t.K[c] = double(x[o0 * stride + c]);
    for (std::int64_t o = o0; o < o1; o += kTileRows) {
        const std::int64_t rows = std::min(kTileRows, o1 - o), next = o + rows;
        const auto prefetch =
            TilePrefetch<T>::next_tile(x, Backward ? dy : nullptr, stride, count, next, o1, kTileRows);
        add_tile_exact<T, Backward>(x + o * stride, Backward ? dy + o * stride : nullptr, stride, count, rows,
                                    prefetch, t);
    }
    for (std::int64_t c = 0; c < count; ++c) t.n[c] += double(o1 - o0);
}

// ---- biased sums (float64 data) ------------------------------------------------------------
//
// The error-free sums above cost about 50 operations per element for backward, which
// makes float64 pass A compute-bound. The biased kernels get the same kind of result with
// about half of them, from one fact (Dekker): when |a| ≥ |v|, s = a + v rounded, and
// a + v = s + (v − (s − a)) exactly, in three operations. Each accumulator of a tile
// (N = 16 rows, or N = 32 steps of a run) starts at a power of two β > 4N·V, where V
// bounds the tile's terms (a first look over the tile finds it): N terms move it by at
// most β/4, so |a| ≥ β/2 > |v| at every step, and at the end a − β is exact (Sterbenz).
// The tile's sum is then a − β plus the sum of the exact error terms, which are small
// (|e| ≤ (10N + 1)·u·V) and are added plainly. The tiles are folded into compensated
// block sums.
//
// The sums are not centred (K = 0): x² and dy·x are split exactly into a product and its
// error (one FMA), so Σx and Σx² are as good as the error-free ones up to a bound
// biased_rel·Σ|terms|, 2^-86 to 2^-80 for usual block shapes; M2 = Σx² − (Σx)²/n then loses
// log2(1 + μ²/σ²) bits to cancellation. The certificates below check, channel by channel,
// that what is left is enough for float64 outputs, and the channels where it is not
// (|μ| ≫ σ, dx a tiny fraction of its terms) are summed again with the error-free kernels.

/// A tile of the biased kernels: `terms` added to each accumulator between folds, and how
/// many accumulators share one largest magnitude V. Rows: 16 rows, a V per channel. Runs:
/// 32 steps of 8 lanes sharing the chunk's V (longer tiles fold less often: NCHW float64
/// backward pass A 7.4 → 5.7 ms with 32 against 16; the rows kernel was slower with 32).
struct BiasedShape {
    int terms, sharing;
};
constexpr BiasedShape kRowTile{16, 1}, kRunTile{32, 8};

/// β = 8N·2^⌊log2 V⌋ for N terms (so 4N·V < β ≤ 8N·V), and at least 2^-900 (V = 0 or
/// subnormal). Up to 2^969 for the largest products of the fast range (2^480 squared).
template <int N> double bias_for(double V) {
    const double p = std::bit_cast<double>(std::bit_cast<std::uint64_t>(V) & 0x7ff0000000000000ULL);
    const double b = 8 * N * p;
    return b < 0x1p-900 ? 0x1p-900 : b;
}
template <int N, class D> D bias_for(D V) { // D = v4d or v8d
    using v4l = long long __attribute__((vector_size(32)));
    using v8l = long long __attribute__((vector_size(64)));
    using L = std::conditional_t<sizeof(D) == 32, v4l, v8l>;
    const auto p = (D)((L)V & 0x7ff0000000000000LL);
    const D b = 8 * N * p, least = D{} + 0x1p-900;
    return b < least ? least : b;
}

/// a += v, with |a| ≥ β/2 > |v|: the rounding error, exactly, into e (which rounds). The
/// subtractions run on the multiply-add units (minus<true>: the same bits), which the
/// additions would otherwise queue for.
template <class D> inline void add_biased(D& a, D& e, D v) {
    const D s = a + v;
    e += minus<true>(v, minus<true>(s, a));
    a = s;
}

/// a += p·q rounded, and into e the whole error p·q − (s − a): the product's rounding
/// and the addition's, exact, in one FMA (one rounding, as TwoProd's p·q − r added to
/// Fast2Sum's r − (s − a): both exact, so the same bits, two operations fewer).
template <class D> inline void add_biased_product(D& a, D& e, D p, D q) {
    const D r = p * q;
    const D s = a + r;
    e += fused(p, q, -minus<true>(s, a));
    a = s;
}

/// add_biased_product for p·q exact in double (p and q float32 values, 24 bits each): then
/// s = fma(p, q, a) is a + p·q rounded once, as there; a − s is exact (both within the
/// bias's range: Sterbenz), and fma(p, q, a − s) the whole error p·q − (s − a), exact.
/// The same bits, one operation fewer (two of the 17 a row of float32 backward's biased
/// rows kernel, whose loop turned out not to wait on these units: 1% in cache on Ice Lake).
template <class D> inline void add_biased_exact_product(D& a, D& e, D p, D q) {
    const D s = fused(p, q, a);
    e += fused(p, q, minus<true>(a, s));
    a = s;
}

/// max(m, |v|), NaN not taken (the sums carry it).
inline double max_magnitude(double m, double v) {
    const double a = magnitude(v);
    return a > m ? a : m;
}
inline detail::simd::v4d max_magnitude(detail::simd::v4d m, detail::simd::v4d v) {
#if defined(__AVX__)
    return _mm256_max_pd(magnitude(v), m); // a > m ? a : m, lane by lane
#else
    const detail::simd::v4d a = magnitude(v);
    return a > m ? a : m;
#endif
}
inline detail::simd::v8d max_magnitude(detail::simd::v8d m, detail::simd::v8d v) {
    const detail::simd::v8d a = magnitude(v);
#if defined(__AVX512F__) // a > m ? a : m in one vmaxpd (GCC 12 makes a compare and a masked
    // move of it, a longer chain; and warns about _mm512_max_pd's undefined pass-through)
    return _mm512_maskz_max_pd(0xff, a, m);
#else
    return a > m ? a : m;
#endif
}

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

/// A biased tile accumulator for each of Σx, Σx² (and Σdy, Σdy·x, Σdy²), for N terms each.
template <class D, bool Backward, int N> struct BiasedTile {
    D b1{}, b2{}, c1{}, c2{}; // the biases
    D a1{}, e1{}, a2{}, e2{}, q1{}, f1{}, q2{}, f2{}, q3{};
    /// Starts the accumulators for terms x, dy with |x| ≤ mx and |dy| ≤ gm.
    void start(D mx, D gm) {
        b1 = a1 = bias_for<N>(mx), b2 = a2 = bias_for<N>(D(mx * mx));
        if constexpr (Backward) c1 = q1 = bias_for<N>(gm), c2 = q2 = bias_for<N>(D(mx * gm));
    }
    void add(D x, D g) {
        add_biased(a1, e1, x);
        add_biased_product(a2, e2, x, x);
        if constexpr (Backward) {
            add_biased(q1, f1, g);
            add_biased_product(q2, f2, g, x);
            q3 = fused(g, g, q3);
        }
    }
    /// add(), or add_exact() when Exact.
    template <bool Exact> void add_as(D x, D g) {
        if constexpr (Exact) add_exact(x, g);
        else add(x, g);
    }
    /// add(), for float32 terms whose sums a1 (and q1) are exact (FloatLook::exact_sums):
    /// their error terms stay +0, as add() leaves them; and their products are exact
    /// (add_biased_exact_product).
    void add_exact(D x, D g) {
        a1 += x;
        add_biased_exact_product(a2, e2, x, x);
        if constexpr (Backward) {
            q1 += g;
            add_biased_exact_product(q2, f2, g, x);
            q3 = fused(g, g, q3);
        }
    }
    /// Adds the tile's sums to the block's, at sums[c] (sums[c..c+3] for v4d).
    void fold(Sums& t, std::size_t c) const {
        auto into = [&](double* sum, double* err, D a, D b, D e) {
            D s = lanes<D>(sum, c), r = lanes<D>(err, c);
            add_compensated(s, r, D(a - b)); // a − β is exact
            put(sum, c, s), put(err, c, D(r + e));
        };
        into(t.s1, t.s1_err, a1, b1, e1), into(t.s2, t.s2_err, a2, b2, e2);
        if constexpr (Backward) {
            into(t.b1, t.b1_err, q1, c1, f1), into(t.b2, t.b2_err, q2, c2, f2);
            D s = lanes<D>(t.b3, c), r = lanes<D>(t.b3_err, c);
            add_compensated(s, r, q3);
            put(t.b3, c, s), put(t.b3_err, c, r);
        }
        put(t.folds, c, D(lanes<D>(t.folds, c) + 1.0));
    }
};

/// float32 data: where the biased sums of x (and of dy) need no error terms. A float's
/// value is a multiple of its ulp, 2^(f − 150) for biased exponent f (f ≥ 1; 2^-149 for
/// subnormals). β = 8N·2^E, E = ⌊log2 V⌋, and N terms keep the accumulator within
/// (β/2, 2β), whose ulp is at most 2^(E + log2(8N) − 52). So when every nonzero term's
/// exponent is at least f_V − 29 + log2(8N), every partial sum a + v is a multiple of that
/// ulp within the accumulator's range: exact, and the error term v − (s − a) is +0 at every
/// step. The kernel then leaves it at +0 without computing it (the same bits). The look at
/// a tile is done on the floats themselves: the largest magnitude as max_magnitude takes it
/// (NaN not taken), and the bits of the smallest nonzero one (an unsigned minimum of
/// bits − 1, which wraps zeros past every other value). A tile with a NaN or ±inf may go
/// either way: its sums are NaN, and its channel is summed again by the exact kernel.
/// FloatLook<D, Chunks> looks at Chunks chunks of kLanesOf<D> channels side by side, in
/// one instruction where it fits (sixteen floats), and chunk<P>() gives chunk P its own.
template <int L> struct FloatLanes { // L floats, and as many 32-bit integers (GCC 12 drops
    // a dependent vector_size from an alias declaration, not from a typedef)
    typedef float F __attribute__((vector_size(4 * L)));
    typedef std::uint32_t U __attribute__((vector_size(4 * L)));
    typedef std::int32_t I __attribute__((vector_size(4 * L)));
};
template <> struct FloatLanes<1> {
    using F = float;
    using U = std::uint32_t;
    using I = std::int32_t;
};
template <class D, int Chunks = 1> struct FloatLook {
    static constexpr int L = kLanesOf<D> * Chunks;
    using F = typename FloatLanes<L>::F;
    using U = typename FloatLanes<L>::U;
    using I = typename FloatLanes<L>::I;
    F largest{};
    U smallest_less_one = U{} - 1u; // (bits of the smallest nonzero magnitude) − 1

    void add(const float* p) {
        U b;
        std::memcpy(&b, p, sizeof b);
        b &= 0x7fffffffu;
        F a;
        std::memcpy(&a, &b, sizeof a);
        largest = a > largest ? a : largest; // vmaxps
        const U less_one = b - 1u;
        smallest_less_one = less_one < smallest_less_one ? less_one : smallest_less_one; // vpminud
    }
    /// The look at both sets of values (o's too).
    void merge(const FloatLook& o) {
        largest = o.largest > largest ? o.largest : largest;
        smallest_less_one = o.smallest_less_one < smallest_less_one ? o.smallest_less_one : smallest_less_one;
    }
    /// The look at the lanes of chunk P of the Chunks: [P·kLanesOf<D>, (P + 1)·kLanesOf<D>).
    template <int P> FloatLook<D> chunk() const {
        static_assert(P < Chunks);
        FloatLook<D> one;
        std::memcpy(&one.largest, reinterpret_cast<const char*>(&largest) + P * sizeof one.largest, sizeof one.largest);
        std::memcpy(&one.smallest_less_one, reinterpret_cast<const char*>(&smallest_less_one) + P * sizeof one.smallest_less_one,
                    sizeof one.smallest_less_one);
        return one;
    }
    /// The look at the values of every lane, as one lane.
    FloatLook<double> across() const {
        FloatLook<double> one;
        for (int j = 0; j < L; ++j) {
            one.largest = largest[j] > one.largest ? largest[j] : one.largest;
            one.smallest_less_one = smallest_less_one[j] < one.smallest_less_one ? smallest_less_one[j] : one.smallest_less_one;
        }
        return one;
    }
    /// The largest magnitude, as a double per lane.
    D top() const {
        if constexpr (L == 1) return double(largest);
        else return __builtin_convertvector(largest, D);
    }
    /// Whether N terms with these magnitudes add to a bias of bias_for<N>(top()) exactly,
    /// in every lane.
    template <int N> bool exact_sums() const {
        static_assert(Chunks == 1);
        constexpr int log2_8N = std::bit_width(unsigned(8 * N)) - 1;
        static_assert((8 * N) == (1 << log2_8N), "N a power of two");
        U vb;
        std::memcpy(&vb, &largest, sizeof vb);
        const I least = I((vb & 0x7f800000u) >> 23) - (29 - log2_8N); // the least exponent field
        const I f = I(((smallest_less_one + 1u) & 0x7f800000u) >> 23); // 0 for no nonzero term
        const I ok = I((smallest_less_one + 1u) == 0u) | I(f >= least);
        if constexpr (L == 1) return ok != 0;
#if defined(__AVX__) // the lanes' sign bits at once (GCC 12 tests lane by lane, two vector operations each)
        else if constexpr (L == 8) return _mm256_movemask_ps(std::bit_cast<__m256>(ok)) == 0xff;
        else if constexpr (L == 4) return _mm_movemask_ps(std::bit_cast<__m128>(ok)) == 0xf;
#endif
        else {
            for (int j = 0; j < L; ++j)
                if (ok[j] == 0) return false;
            return true;
        }
    }
};

/// For the centred biased sums (of x − K): whether x − K is exact for every x of a tile
/// whose values lie in [lo, hi], which Sterbenz's lemma gives when they are all within
/// [K/2, 2K] (or [2K, K/2]); else NaN in place of the tile's largest |x − K|, which
/// poisons its sums, so that the channel's certificate fails. K = 0 subtracts nothing.
template <class D> inline D centred_magnitude(D lo, D hi, D K) {
    const D half = 0.5 * K, twice = 2.0 * K;
    const auto ok = ((smaller(half, twice) <= lo) & (hi <= larger(half, twice))) | (K == 0.0);
    const D nan = D{} + NAN; // (D = v8d too)
    return ok ? larger(D(hi - K), D(K - lo)) : nan;
}

/// The first look at float64 values: their largest magnitude (NaN not taken); never the
/// float32 shortcut. (FloatLook for float32 data.)
template <class D> struct DoubleLook {
    D largest{};
    template <class T> void add(const T* p) { largest = max_magnitude(largest, lanes<D>(p, 0)); }
    D top() const { return largest; }
    template <int N> bool exact_sums() const { return false; }
    template <int P> const DoubleLook& chunk() const { return *this; }
};

/// The first look at values to be summed centred on K: their largest and smallest.
template <class D> struct CentredLook {
    D hi = D{} - INFINITY, lo = D{} + INFINITY;
    template <class T> void add(const T* p) {
        const D v = lanes<D>(p, 0);
        hi = larger(hi, v), lo = smaller(lo, v);
    }
    D top() const { return larger(D(-lo), hi); } // the largest |x|
    template <int N> bool exact_sums() const { return false; }
    template <int P> const CentredLook& chunk() const { return *this; }
};

/// The chunks of V vectors of channels (D = v8d, v4d or double: Lanes = V·kLanesOf<D>
/// channels each) [c, c + Lanes·chunks) of `rows` ≤ 16 channels-last rows (`stride` values
/// apart) added to the biased sums t, chunk by chunk. A chunk's tile accumulators start
/// from a first look down its rows (its largest magnitudes, which set the biases; for
/// float32 also whether Σx and Σdy are exact: FloatLook), then sum. V independent vectors
/// keep the adders busy while each waits on its own sums. Centred: of x − K (K = t.K per
/// channel), where that is exact (centred_magnitude).
///
/// Each chunk's look is done while the chunk before it is summed (the same operations per
/// chunk either way, so the same bits). One after the other, the look (a chain of maxima
/// down the rows) and the sums (chains of additions down the rows) each waited on its own
/// chains; interleaved, each fills the other's waits. One thread on Ice Lake, pass A:
///   float32 backward, dy = 0.5 + 2x: 8192 x 256 (in L3) 2.21-2.26 → 1.90-1.93 ms,
///     65536 x 256 18.4-19.1 → 15.8-17.8 ms (two threads 9.8-12.1 → 8.4-8.9);
///   float64 backward: 1024 x 256 0.31 → 0.25 ms, 65536 x 256 25.0-26.1 → 23.5-23.7;
///   float64 forward: 1024 x 256 0.146 → 0.109 ms, 65536 x 256 14.4-15.3 → 13.1-14.2;
///   float64 backward centred (x + 5·10^4): 16384 x 256 7.1-7.3 → 6.4-6.5 ms,
///     65536 x 256 28.2-29.7 → 26.2-26.8;
///   built for AVX2 (x86-64-v3, four lanes), run on the same machine: float32 backward,
///     dy = 0.5 + 2x, 8192 x 256 3.01-3.04 → 2.62-2.67 ms; float64 backward 1024 x 256
///     0.40 → 0.34 ms, forward 0.169 → 0.146 ms.
/// Looking at the next tile instead (16 rows further down) was slower: see the README.
/// flatten: with BiasedTile::fold called out of line, GCC kept the sums on the stack, and
/// the loop was slower than before.
///
/// G = 2 (float32, one vector of channels; `chunks` even): the look is at two chunks at
/// once, 16 floats (a line) where one chunk's is 8, done while the first of the two chunks
/// before them is summed; FloatLook<D, 2>::chunk gives each chunk its half, the same
/// values as its own look. That halves the look's instructions, which were a fifth of the
/// loop's. With the lanes' test of exact_sums by their sign bits (it was two vector
/// operations a lane) and TilePrefetch's shorter step, float32 backward, dy = 0.5 + 2x,
/// one thread on Ice Lake: this kernel in cache 6.7 → 5.5 ns a row of eight channels;
/// pass A on 65536 x 256 15.6 → 14.1 ms (two threads 8.3 → 7.6).
template <class D, bool Backward, int V, bool Centred, int G, class T>
[[gnu::noinline, gnu::flatten]] void add_chunks_biased(const T* __restrict x, const T* __restrict g,
                                                      std::int64_t stride, std::int64_t rows, std::size_t c,
                                                      std::size_t chunks, Sums& t, TilePrefetch<T>& prefetch_of_tile) {
    static_assert(G == 1 || (std::is_same_v<T, float> && !Centred), "looks at two chunks at once: float32's");
    using Look = std::conditional_t<std::is_same_v<T, float>, FloatLook<D, G>, DoubleLook<D>>;
    using LookX = std::conditional_t<Centred, CentredLook<D>, Look>;
    constexpr int N = kRowTile.terms, L = kLanesOf<D>, Lanes = V * L;
    auto at = [&](int j) { return c + std::size_t(j * L); };
    LookX lx[V]; // the look at the group of G chunks from c
    Look lg[V];
    auto look = [&](LookX (&ax)[V], Look (&ag)[V], std::int64_t r, std::size_t from) {
#pragma GCC unroll 4
        for (int j = 0; j < V; ++j) {
            ax[j].add(x + r * stride + from + std::size_t(j * L));
            if constexpr (Backward) ag[j].add(g + r * stride + from + std::size_t(j * L));
        }
    };
    TilePrefetch<T> prefetch = prefetch_of_tile; // (in registers)
    for (std::int64_t r = 0; r < rows; ++r) prefetch.template step<G * Lanes>(), look(lx, lg, r, c);
    for (std::size_t k = 0; k < chunks; k += G) {
        LookX nx[V]; // the look at the next group
        Look ng[V];
        const bool next = k + G < chunks;
        // chunk k + P, from c
        auto one_chunk = [&]<int P>() {
            // per vector: the largest |x|, the largest term (Centred: |x − K|), the largest |dy|
            D top[V], mx[V], gm[V] = {}, K[V] = {};
            bool exact = true;
            BiasedTile<D, Backward, N> tile[V];
#pragma GCC unroll 4
            for (int j = 0; j < V; ++j) {
                const auto ax = lx[j].template chunk<P>();
                top[j] = ax.top(), exact = exact && ax.template exact_sums<N>();
                if constexpr (Centred) K[j] = lanes<D>(t.K, at(j)), mx[j] = centred_magnitude(ax.lo, ax.hi, K[j]);
                else mx[j] = top[j];
                if constexpr (Backward) {
                    const auto ag = lg[j].template chunk<P>();
                    gm[j] = ag.top(), exact = exact && ag.template exact_sums<N>();
                }
                tile[j].start(mx[j], gm[j]);
            }
            // Step: the prefetch; Looks: the look at the next group
            auto sum_tile = [&]<bool Exact, bool Step, bool Looks>() {
                for (std::int64_t r = 0; r < rows; ++r) {
                    if constexpr (Step) prefetch.template step<Lanes>();
                    if constexpr (Looks) look(nx, ng, r, c + G * Lanes);
#pragma GCC unroll 4
                    for (int j = 0; j < V; ++j) {
                        const D v = lanes<D>(x + r * stride, at(j));
                        tile[j].template add_as<Exact>(Centred ? D(v - K[j]) : v,
                                                       Backward ? lanes<D>(g + r * stride, at(j)) : D{});
                    }
                }
            };
            if (exact) next ? sum_tile.template operator()<true, true, P == 0>()
                            : sum_tile.template operator()<true, false, false>();
            else next ? sum_tile.template operator()<false, true, P == 0>()
                      : sum_tile.template operator()<false, false, false>();
#pragma GCC unroll 4
            for (int j = 0; j < V; ++j) {
                tile[j].fold(t, at(j));
                const D m = lanes<D>(t.max_abs, at(j));
                put(t.max_abs, at(j), top[j] > m ? top[j] : m);
                if constexpr (Backward) {
                    const D gmax = lanes<D>(t.dy_max_abs, at(j));
                    put(t.dy_max_abs, at(j), gm[j] > gmax ? gm[j] : gmax);
                }
            }
            c += Lanes;
        };
        one_chunk.template operator()<0>();
        if constexpr (G == 2) one_chunk.template operator()<1>();
#pragma GCC unroll 4
        for (int j = 0; j < V; ++j) lx[j] = nx[j], lg[j] = ng[j];
    }
    prefetch_of_tile = prefetch;
}

/// Rows [o0, o1) of a channels-last view (inner == 1) added to the biased sums: `count`
/// channels from x[0] and dy[0] of each row, rows `stride` values apart, tile by tile
/// (kRowTile.terms rows), a chunk of channels at a time, then the last ones one by one
/// with the same operations.
template <class T, bool Backward, bool Centred = false>
void add_rows_biased(const T* x, const T* dy, std::int64_t stride, std::int64_t count, std::int64_t o0,
                     std::int64_t o1, Sums& t) {
    const auto C = std::size_t(count);
    constexpr std::int64_t N = kRowTile.terms;
    for (std::int64_t o = o0; o < o1; o += N) {
        const std::int64_t rows = std::min(N, o1 - o), next = o + rows;
        auto prefetch = TilePrefetch<T>::next_tile(x, Backward ? dy : nullptr, stride, count, next, o1, N);
        const T* xt = x + o * stride;
        const T* gt = Backward ? dy + o * stride : nullptr;
        // Chunks of V vectors of channels, as many as the registers hold the sums of, then of
        // one vector, then single channels: each channel sees the same operations whichever
        // way it is reached.
        std::size_t c = 0;
        auto chunks_of = [&]<class D, int V>() {
            constexpr std::size_t Lanes = std::size_t(V * kLanesOf<D>);
            std::size_t n = (C - c) / Lanes;
            // float32, one vector: pairs of chunks looked at together (FloatLook<D, 2>)
            constexpr bool Pairs = std::is_same_v<T, float> && !Centred && V == 1 && kLanesOf<D> > 1;
            if constexpr (Pairs) {
                if (n >= 2) add_chunks_biased<D, Backward, V, Centred, 2>(xt, gt, stride, rows, c, n / 2 * 2, t, prefetch);
                c += n / 2 * 2 * Lanes, n %= 2;
            }
            if (n > 0) add_chunks_biased<D, Backward, V, Centred, 1>(xt, gt, stride, rows, c, n, t, prefetch);
            c += n * Lanes;
        };
#if defined(__AVX512F__)
        // AVX-512, forward: two vectors of eight channels (simd::v8d). 65536 x 256, one
        // thread, pass A 8.4-9.0 → 7.6-8.0 ms, NHWC 3.0-3.3 → 2.8-2.9 ms (Zen 4).
        // Backward: one vector of eight, the lanes of v4d's two. No faster on Zen 4, which
        // splits a v8d in two; on Ice Lake, float64 65536 x 256 one thread 55-62 → 50-57 ms.
        chunks_of.template operator()<detail::simd::v8d, Backward ? 1 : 2>();
#endif
        constexpr int V = Backward ? (detail::simd::kRegisters == 32 ? 2 : 1) : 4;
        chunks_of.template operator()<detail::simd::v4d, V>();
        chunks_of.template operator()<detail::simd::v4d, 1>();
        chunks_of.template operator()<double, 1>();
    }
    for (std::size_t c = 0; c < C; ++c) t.n[c] += double(o1 - o0);
}

/// The values v[0, len) (and dy g) of channel c added to its biased sums, in chunks of
/// kRunTile.terms steps of 2·kWidth lanes (the rest one by one); a chunk's lanes share
/// the biases of its largest magnitudes. While a chunk is summed, the next one is
/// prefetched into L1: without it the chunk's first look (its largest magnitudes) waited
/// on memory with nothing else to do, and NCHW (32, 64, 56, 56) float64 backward took
/// 23.5-24.7 ms on Ice Lake, one thread; 19.4-20.3 ms with it (forward 15.7-16.3 → 13.6).
template <class T, bool Backward, bool Centred = false>
void add_run_biased(const T* v, const T* g, std::int64_t len, std::size_t c, Sums& t) {
    using namespace detail::simd;
    constexpr int N = kRunTile.terms;
    static_assert(kRunTile.sharing == 2 * kWidth, "a chunk's lanes share its V");
    constexpr std::int64_t step = 2 * kWidth, chunk = N * step;
    const double K = Centred ? t.K[c] : 0.0;
    for (std::int64_t i = 0; i < len;) {
        const std::int64_t end = std::min(len, i + chunk);
        // the chunk's largest magnitudes, or (Centred) its largest and smallest x (in any
        // order: the same max and min)
        v4d mv{}, gv{}, hv = splat(-INFINITY), lv = splat(INFINITY);
        std::int64_t k = i;
        // float32: the look on the floats, which also tells whether Σx and Σdy are exact
        constexpr bool Floats = std::is_same_v<T, float> && !Centred;
        bool exact = false;
        FloatLook<double> fx, fg; // (Floats)
        if constexpr (Floats) {
            FloatLook<v8d> lx[4], lg[4];
            for (; k + 32 <= end; k += 32)
#pragma GCC unroll 4
                for (int j = 0; j < 4; ++j) {
                    lx[j].add(v + k + 8 * j);
                    if constexpr (Backward) lg[j].add(g + k + 8 * j);
                }
            for (; k + 8 <= end; k += 8) {
                lx[0].add(v + k);
                if constexpr (Backward) lg[0].add(g + k);
            }
            lx[0].merge(lx[1]), lx[2].merge(lx[3]), lx[0].merge(lx[2]);
            lg[0].merge(lg[1]), lg[2].merge(lg[3]), lg[0].merge(lg[2]);
            fx = lx[0].across(), fg = lg[0].across();
            for (; k < end; ++k) {
                fx.add(v + k);
                if constexpr (Backward) fg.add(g + k);
            }
            exact = fx.template exact_sums<N>() && (!Backward || fg.template exact_sums<N>());
        }
#if defined(__AVX512F__)
        // eight lanes for the magnitudes (a maximum of magnitudes, never −0, is the same
        // value in any grouping); Centred keeps four, whose ±0 choices follow the order
        // (four maxima at a time: one waits on the last)
        if constexpr (!Centred && !Floats) {
            v8d m8[4] = {}, g8[4] = {};
            for (; k + 32 <= end; k += 32)
#pragma GCC unroll 4
                for (int j = 0; j < 4; ++j) {
                    m8[j] = max_magnitude(m8[j], lanes<v8d>(v, std::size_t(k + 8 * j)));
                    if constexpr (Backward) g8[j] = max_magnitude(g8[j], lanes<v8d>(g, std::size_t(k + 8 * j)));
                }
            for (; k + 8 <= end; k += 8) {
                m8[0] = max_magnitude(m8[0], lanes<v8d>(v, std::size_t(k)));
                if constexpr (Backward) g8[0] = max_magnitude(g8[0], lanes<v8d>(g, std::size_t(k)));
            }
            const v8d m = max_magnitude(max_magnitude(m8[0], m8[1]), max_magnitude(m8[2], m8[3]));
            const v8d gg = max_magnitude(max_magnitude(g8[0], g8[1]), max_magnitude(g8[2], g8[3]));
            mv = larger(v4d{m[0], m[1], m[2], m[3]}, v4d{m[4], m[5], m[6], m[7]});
            gv = larger(v4d{gg[0], gg[1], gg[2], gg[3]}, v4d{gg[4], gg[5], gg[6], gg[7]});
        }
#endif
        for (; k + kWidth <= end; k += kWidth) {
            if constexpr (Centred) hv = larger(hv, load(v + k)), lv = smaller(lv, load(v + k));
            else mv = max_magnitude(mv, load(v + k));
            if constexpr (Backward) gv = max_magnitude(gv, load(g + k));
        }
        double mx = std::max(std::max(mv[0], mv[1]), std::max(mv[2], mv[3]));
        double hi = std::max(std::max(hv[0], hv[1]), std::max(hv[2], hv[3]));
        double lo = std::min(std::min(lv[0], lv[1]), std::min(lv[2], lv[3]));
        double gm = std::max(std::max(gv[0], gv[1]), std::max(gv[2], gv[3]));
        for (; k < end; ++k) {
            if constexpr (Centred) hi = larger(hi, double(v[k])), lo = smaller(lo, double(v[k]));
            else mx = max_magnitude(mx, v[k]);
            if constexpr (Backward) gm = max_magnitude(gm, g[k]);
        }
        if constexpr (Floats) mx = fx.top(), gm = fg.top();
        const double top = Centred ? larger(-lo, hi) : mx; // the chunk's largest |x|
        if constexpr (Centred) mx = centred_magnitude(lo, hi, K);
        BiasedTile<double, Backward, N> rest;
        rest.start(mx, gm);
        auto lane_of = [&]<class D>(const BiasedTile<D, Backward, N>& tv, int j) {
            BiasedTile<double, Backward, N> r;
            r.start(mx, gm);
            r.a1 = tv.a1[j], r.e1 = tv.e1[j], r.a2 = tv.a2[j], r.e2 = tv.e2[j];
            if constexpr (Backward) r.q1 = tv.q1[j], r.f1 = tv.f1[j], r.q2 = tv.q2[j], r.f2 = tv.f2[j], r.q3 = tv.q3[j];
            return r;
        };
#if defined(__AVX512F__)
        // AVX-512: the step's eight lanes as one v8d, whose lanes 0-3 and 4-7 are those of
        // ta and tb below, folded in the same order (the same bits). On Ice Lake, NCHW
        // (4, 64, 56, 56) float64 backward in cache, one thread: 2.4-2.6 → 2.1-2.4 ms.
        const v8d K8 = detail::broadcast<v8d>(K);
        BiasedTile<v8d, Backward, N> t8;
        t8.start(detail::broadcast<v8d>(mx), detail::broadcast<v8d>(gm));
        auto sum_chunk = [&]<bool Exact>() {
            for (; i + step <= end; i += step) {
                prefetch_l1(v, i + chunk);
                if constexpr (Backward) prefetch_l1(g, i + chunk);
                const v8d x8 = lanes<v8d>(v, std::size_t(i));
                t8.template add_as<Exact>(Centred ? v8d(x8 - K8) : x8, Backward ? lanes<v8d>(g, std::size_t(i)) : v8d{});
            }
            for (; i < end; ++i)
                rest.template add_as<Exact>(Centred ? double(v[i]) - K : double(v[i]), Backward ? g[i] : 0.0);
        };
        if (Floats && exact) sum_chunk.template operator()<true>();
        else sum_chunk.template operator()<false>();
        for (int j = 0; j < kWidth; ++j) lane_of(t8, j).fold(t, c), lane_of(t8, j + kWidth).fold(t, c);
#else
        const v4d Kv = splat(K);
        BiasedTile<v4d, Backward, N> ta, tb;
        ta.start(splat(mx), splat(gm)), tb.start(splat(mx), splat(gm));
        auto sum_chunk = [&]<bool Exact>() {
            for (; i + step <= end; i += step) {
                prefetch_l1(v, i + chunk);
                if constexpr (Backward) prefetch_l1(g, i + chunk);
                ta.template add_as<Exact>(Centred ? v4d(load(v + i) - Kv) : load(v + i), Backward ? load(g + i) : v4d{});
                tb.template add_as<Exact>(Centred ? v4d(load(v + i + kWidth) - Kv) : load(v + i + kWidth),
                                          Backward ? load(g + i + kWidth) : v4d{});
            }
            for (; i < end; ++i)
                rest.template add_as<Exact>(Centred ? double(v[i]) - K : double(v[i]), Backward ? g[i] : 0.0);
        };
        if (Floats && exact) sum_chunk.template operator()<true>();
        else sum_chunk.template operator()<false>();
        for (int j = 0; j < kWidth; ++j) lane_of(ta, j).fold(t, c), lane_of(tb, j).fold(t, c);
#endif
        rest.fold(t, c);
        t.max_abs[c] = std::max(t.max_abs[c], top);
        if constexpr (Backward) t.dy_max_abs[c] = std::max(t.dy_max_abs[c], gm);
    }
    t.n[c] += double(len);
}

/// Adds the values v[0, len) (and dy g) of channel c to its sums with plain kernels, in
/// 2·kWidth lanes, folded every kPlainRun values per lane; the next chunk prefetched
/// meanwhile, as in add_run_biased (NCHW (32, 64, 56, 56) float32 backward, one thread on
/// Ice Lake: 9.5-10.2 → 8.8-9.6 ms; forward 6.7-7.1 → 6.1-6.6 ms).
template <class T, bool Backward> void add_run_plain(const T* v, const T* g, std::int64_t len, std::size_t c, Sums& t) {
    using namespace detail::simd;
    if (t.n[c] == 0) t.K[c] = double(v[0]);
    const v4d K = splat(t.K[c]);
    constexpr std::int64_t step = 2 * kWidth, chunk = kPlainRun * step;
    std::int64_t i = 0;
    while (i < len) {
        const std::int64_t end = std::min(len, i + chunk);
        v4d s1a{}, s1b{}, s2a{}, s2b{}, b1a{}, b1b{}, b2a{}, b2b{}, b3a{}, b3b{};
#if defined(__AVX512F__)
        // AVX-512: the step's eight lanes as one v8d, whose halves are the a and b lanes
        // below (the same bits). In cache on Ice Lake: one chain per sum at 4 cycles a
        // step, against 14 operations of v4d on two ports.
        {
            const v8d K8 = detail::broadcast<v8d>(t.K[c]);
            v8d s1{}, s2{}, b1{}, b2{}, b3{};
            for (; i + step <= end; i += step) {
                prefetch_l1(v, i + chunk);
                if constexpr (Backward) prefetch_l1(g, i + chunk);
                const v8d d = lanes<v8d>(v, std::size_t(i)) - K8;
                s1 += d;
                s2 = fma(d, d, s2);
                if constexpr (Backward) {
                    const v8d gv = lanes<v8d>(g, std::size_t(i));
                    b1 += gv;
                    b2 = fma(gv, d, b2);
                    b3 = fma(gv, gv, b3);
                }
            }
            auto halves = [](v8d w, v4d& lo, v4d& hi) {
                lo = v4d{w[0], w[1], w[2], w[3]}, hi = v4d{w[4], w[5], w[6], w[7]};
            };
            halves(s1, s1a, s1b), halves(s2, s2a, s2b), halves(b1, b1a, b1b);
            halves(b2, b2a, b2b), halves(b3, b3a, b3b);
        }
#endif
        for (; i + step <= end; i += step) {
            prefetch_l1(v, i + chunk);
            if constexpr (Backward) prefetch_l1(g, i + chunk);
            const v4d da = load(v + i) - K, db = load(v + i + kWidth) - K;
            s1a += da, s1b += db;
            s2a = fma(da, da, s2a), s2b = fma(db, db, s2b);
            if constexpr (Backward) {
                const v4d ga = load(g + i), gb = load(g + i + kWidth);
                b1a += ga, b1b += gb;
                b2a = fma(ga, da, b2a), b2b = fma(gb, db, b2b);
                b3a = fma(ga, ga, b3a), b3b = fma(gb, gb, b3b);
            }
        }
        double p1 = sum_lanes(s1a + s1b), p2 = sum_lanes(s2a + s2b);
        double q1 = sum_lanes(b1a + b1b), q2 = sum_lanes(b2a + b2b), q3 = sum_lanes(b3a + b3b);
        for (; i < end; ++i) { // the tail, fewer than 2·kWidth values
            const double d = double(v[i]) - t.K[c];
            p1 += d;
            p2 = std::fma(d, d, p2);
            if constexpr (Backward) {
                const double gi = double(g[i]);
                q1 += gi;
                q2 = std::fma(gi, d, q2);
                q3 = std::fma(gi, gi, q3);
            }
        }
        fold(t.s1[c], t.s1_err[c], p1);
        fold(t.s2[c], t.s2_err[c], p2);
        if constexpr (Backward) {
            fold(t.b1[c], t.b1_err[c], q1);
            fold(t.b2[c], t.b2_err[c], q2);
            fold(t.b3[c], t.b3_err[c], q3);
        }
    }
    t.n[c] += double(len);
}

/// How pass A sums: error-free (any data), plain (float32), biased (float64, and float32's
/// second stage), or biased around a centre per channel (float64's second stage).
enum class Summation { exact, plain, biased, centred };

/// The totals of per-block Moments (block b's channel c at b·C + c), merged block by block
/// in order, four channels at a time where every block has them (the same bits as one at
/// a time), on threads when there are many. 64 blocks of 256 channels (float64 backward,
/// 65536 x 256) took 1.05 ms merged one by one on one thread: 0.30 ms as lanes, 0.22 ms
/// on two threads.
MomentsVector merged_blocks(const MomentsVector& per_block, std::int64_t count, std::size_t C, int threads) {
    using detail::simd::v4d;
    constexpr auto W = std::size_t(detail::simd::kWidth);
    MomentsVector total(C);
    const auto at = [&](std::int64_t b, std::size_t c) { return &per_block[std::size_t(b) * C + c]; };
    const auto groups = std::int64_t((C + W - 1) / W);
    const int merging_threads = count * std::int64_t(C) >= 16384 ? threads : 1; // else not worth a thread
    detail::parallel_for(groups, merging_threads, [&](std::int64_t g0, std::int64_t g1) {
        for (std::size_t c = std::size_t(g0) * W; c < std::min(C, std::size_t(g1) * W); c += W) {
            bool lanes = c + W <= C;
            for (std::int64_t b = 0; b < count && lanes; ++b)
                for (std::size_t j = 0; j < W; ++j) lanes = lanes && at(b, c)[j].n != 0;
            if (lanes) {
                MomentsOf<v4d> t = MomentsOf<v4d>::gather(at(0, c));
                for (std::int64_t b = 1; b < count; ++b) t.combine(MomentsOf<v4d>::gather(at(b, c)));
                t.scatter(&total[c]);
            } else {
                for (std::size_t j = c; j < std::min(C, c + W); ++j)
                    for (std::int64_t b = 0; b < count; ++b) total[j].merge(*at(b, j));
            }
        }
    });
    return total;
}

/// The relative bound of Σdy² from the kernels of `How`, over whole rows (`rows`) or runs:
/// the plain and the biased kernels add dy² plainly, a plain run or a biased tile's terms
/// at a time, and fold that into a compensated sum.
constexpr double dy_squares_rel(Summation how, bool rows) {
    return how == Summation::plain    ? kPlainGamma
           : how != Summation::exact  ? gamma_of((rows ? kRowTile : kRunTile).terms + 2)
                                      : 0.0;
}

/// Pass A over the whole tensor: the Moments of every channel, with the kernels of `How`;
/// the threads take the blocks as they come (parallel_chunks), each into its own slot.
template <class T, bool Backward, Summation How>
MomentsVector channel_moments(const T* x, const T* dy, const Layout& l, const Blocks& blocks, int threads,
                              const double* centres = nullptr) {
    constexpr bool Plain = How == Summation::plain, Centred = How == Summation::centred;
    constexpr bool Biased = How == Summation::biased || Centred;
    const auto C = std::size_t(l.channels);
    MomentsVector per_block(std::size_t(blocks.count) * C);
    detail::parallel_chunks(blocks.count, 1, threads, [&](std::int64_t b0, std::int64_t b1) {
        Sums sums;
        for (std::int64_t b = b0; b < b1; ++b) {
            sums.reset(C, Backward);
            if constexpr (Centred) std::copy(centres, centres + C, sums.K);
            const bool rows = blocks.whole_rows && l.inner == 1; // else runs (of one value, when inner == 1)
            if (rows) {
                const auto [o0, o1] = blocks.rows(b);
                if constexpr (Plain) add_rows_plain<T, Backward>(x, dy, l.channels, o0, o1, sums);
                else if constexpr (Biased)
                    add_rows_biased<T, Backward, Centred>(x, dy, l.channels, l.channels, o0, o1, sums);
                else add_rows<T, Backward>(x, dy, l.channels, l.channels, o0, o1, sums);
            } else {
                blocks.for_runs(b, [&](std::int64_t off, std::int64_t c) {
                    const T* g = Backward ? dy + off : nullptr;
                    if constexpr (Plain) add_run_plain<T, Backward>(x + off, g, l.inner, std::size_t(c), sums);
                    else if constexpr (Biased)
                        add_run_biased<T, Backward, Centred>(x + off, g, l.inner, std::size_t(c), sums);
                    else add_run<T, Backward>(x + off, g, l.inner, std::size_t(c), sums);
                });
            }
            Moments* out = per_block.data() + std::size_t(b) * C;
            const auto counted = [&](std::size_t c) { // a block may hold only some channels
                return sums.n[c] != 0 && sums.n[c + 1] != 0 && sums.n[c + 2] != 0 && sums.n[c + 3] != 0;
            };
            for_channel_lanes(C, counted, [&](std::size_t c, auto lanes_type) {
                using D = decltype(lanes_type);
                if (sums.n[c] == 0) return;
                const D rel = Biased ? biased_rel(lanes<D>(sums.folds, c), rows ? kRowTile : kRunTile)
                                     : detail::broadcast<D>(Plain ? kPlainGamma : 0.0);
                MomentsOf<D>::of(sums, c, Backward, rel).scatter(out + c);
            });
        }
    });
    if (blocks.count == 1) return per_block; // the totals already (a merge into empty Moments copies)
    return merged_blocks(per_block, blocks.count, C, threads);
}

/// The Moments of channel c alone with the error-free or the biased kernels: the same
/// bits as channel_moments<T, Backward, How> gives for c, reading only c's values.
template <class T, bool Backward, Summation How>
Moments one_channel_moments(const T* x, const T* dy, const Layout& l, const Blocks& blocks, std::int64_t c,
                            const double* centres = nullptr) {
    static_assert(How != Summation::plain, "the plain kernels are only run over every channel");
    constexpr bool Centred = How == Summation::centred, Biased = How == Summation::biased || Centred;
    Moments total;
    Sums sums;
    for (std::int64_t b = 0; b < blocks.count; ++b) {
        sums.reset(1, Backward);
        if constexpr (Centred) sums.K[0] = centres[c];
        const bool rows = blocks.whole_rows && l.inner == 1;
        if (rows) {
            const auto [o0, o1] = blocks.rows(b);
            const T* g = Backward ? dy + c : nullptr;
            if constexpr (Biased) add_rows_biased<T, Backward, Centred>(x + c, g, l.channels, 1, o0, o1, sums);
            else add_rows<T, Backward>(x + c, g, l.channels, 1, o0, o1, sums);
        } else {
            blocks.for_runs(b, [&](std::int64_t off, std::int64_t run_c) {
                if (run_c != c) return;
                const T* g = Backward ? dy + off : nullptr;
                if constexpr (Biased) add_run_biased<T, Backward, Centred>(x + off, g, l.inner, 0, sums);
                else add_run<T, Backward>(x + off, g, l.inner, 0, sums);
            });
        }
        const double rel = Biased ? biased_rel(sums.folds[0], rows ? kRowTile : kRunTile) : 0.0;
        if (sums.n[0] != 0) total.merge(Moments::of(sums, 0, Backward, rel));
    }
    return total;
}

/// The channels `todo` of ms summed again with the kernels of `How`, each with the bits
/// channel_moments<T, Backward, How> gives it. One channel of channels-last data is read
/// with a stride, which touches every line of the tensor: beyond one such channel, one
/// pass over all of them costs less.
template <class T, bool Backward, Summation How>
[[gnu::noinline]] void sum_again(const T* x, const T* dy, const Layout& l, const Blocks& blocks, int threads,
               const std::vector<std::int64_t>& todo, MomentsVector& ms, const double* centres = nullptr) {
    if (l.inner == 1 && todo.size() > 1) {
        const MomentsVector all = channel_moments<T, Backward, How>(x, dy, l, blocks, threads, centres);
        for (std::int64_t c : todo) ms[std::size_t(c)] = all[std::size_t(c)];
        return;
    }
    detail::parallel_for(std::int64_t(todo.size()), threads, [&](std::int64_t i0, std::int64_t i1) {
        for (std::int64_t i = i0; i < i1; ++i)
            ms[std::size_t(todo[i])] = one_channel_moments<T, Backward, How>(x, dy, l, blocks, todo[i], centres);
    });
}

/// Per channel: true when the fast path's double arithmetic cannot overflow, underflow
/// or meet a non-finite value for its data; the other channels are computed by the exact
/// kernel, so that a channel's outputs depend on its own data only.
std::vector<char> in_fast_range(const MomentsVector& ms, bool is_double) {
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
bool pass_b_enough(const MomentsOf<double>& m, double eps, const Tolerance& tol) {
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

/// Which sums a channel's outputs come from: the first stage of pass A whose certificate
/// it passed.
enum class Certified : char {
    fast,    // the fast sums (float32: plain, or biased when the plain ones were not enough)
    careful, // float32 backward: biased sums, certified for the double-double pass B only
    exact,   // summed again error-free
};

/// Does channel m's certificate of `tol` pass (backward's or forward's), for sums whose
/// Σdy² is off by at most dy_rel relative?
template <bool Backward, class D>
mask_of<D> certified(const MomentsOf<D>& m, double eps, const Tolerance& tol, double dy_rel) {
    if constexpr (Backward) return backward_certified(m, eps, tol, dy_rel);
    else return forward_certified(m, eps, tol);
}

/// The least number of blocks for which certified_moments previews the first stage.
constexpr std::int64_t kPreviewBlocks = 4;

/// The preview of certified_moments' first stage (`first`) on an eighth of the first
/// block: its moments into `preview`, and per channel whether it starts at the second
/// stage (it fails the first there and, float64, could be summed centred). Apart, and
/// certifying one channel at a time (the same result as four at a time): sharing the
/// certificate loop with certified_moments took it out of line there, and the tiny
/// (64, 16) float32 backward, which never previews, 0.06 µs longer.
template <class T, bool Backward, Summation First>
[[gnu::noinline]] std::vector<char> first_stage_preview(const T* x, const T* dy, const Layout& l, const Blocks& blocks,
                                                        double eps, const Tolerance& tol, double dy_rel,
                                                        MomentsVector& preview) {
    const Layout rows{blocks.per_block / 8, l.channels, l.inner};
    preview = channel_moments<T, Backward, First>(x, dy, rows, Blocks(rows, (Backward ? 2 : 1) * sizeof(T), blocks.whole),
                                                  1);
    std::vector<char> skip(preview.size());
    for (std::size_t c = 0; c < skip.size(); ++c) {
        const Moments& m = preview[c];
        skip[c] = !certified<Backward>(m, eps, tol, dy_rel) && (sizeof(T) == 4 || m.max_abs <= 2 * std::abs(m.mean.hi));
    }
    return skip;
}

/// Pass A, in stages: every channel with the fast sums of T (plain for float32, biased
/// for float64); the channels whose certificate fails, again: float32 with float64's
/// biased sums (they keep ~2^-86 where plain sums keep 2^-48), float64 with the biased
/// sums centred on the channel's mean (for |μ| ≫ σ, where the uncentred ones lose
/// log2(1 + μ²/σ²) bits); those that still fail, error-free. A channel that fails the
/// first stage on a preview of its first rows starts at the second. how[c] tells where
/// channel c's moments come from. A channel's bits come from its own data only, whichever
/// stage its neighbours need.
/// `whole`: the channels of the tensor x is in (Blocks), 0 for l.channels.
template <class T, bool Backward>
MomentsVector certified_moments(const T* x, const T* dy, const Layout& l, std::int64_t whole, double eps, int threads,
                                std::vector<Certified>& how) {
    const Blocks blocks(l, (Backward ? 2 : 1) * sizeof(T), whole);
    constexpr bool is_float = sizeof(T) == 4;
    constexpr Summation first = is_float ? Summation::plain : Summation::biased;
    const Tolerance& tol = is_float ? kFloat32Tolerance : kFloat64Tolerance;
    const bool rows = blocks.whole_rows && l.inner == 1; // which kernels: for Σdy²'s bound
    // A preview of the first stage on the first rows (an eighth of the first block, in
    // tensors of at least kPreviewBlocks blocks of whole rows). A channel that fails it,
    // and (float64) could be summed centred, starts at the second stage, with the
    // preview's moments (float64: its mean as the centre): it would most likely fail the
    // first stage too (dy nearly linear in x, data far from 0 against its spread). When
    // every channel does, the first stage's pass is saved. Every stage is certified as
    // before: the preview decides the cost, never the accuracy; and a channel's route
    // depends on its own data only. On ordinary data the preview costs 1/(8·blocks) of a
    // pass.
    MomentsVector preview_ms;
    std::vector<char> skip; // per channel: straight to the second stage
    if (blocks.count >= kPreviewBlocks && blocks.whole_rows && blocks.per_block >= 8)
        skip = first_stage_preview<T, Backward, first>(x, dy, l, blocks, eps, tol, dy_squares_rel(first, rows),
                                                       preview_ms);
    MomentsVector ms;
    if (!skip.empty() && std::all_of(skip.begin(), skip.end(), [](char k) { return k; })) {
        ms = std::move(preview_ms);
        how.assign(ms.size(), Certified::exact);
    } else {
        ms = channel_moments<T, Backward, first>(x, dy, l, blocks, threads);
        // every channel, four at a time (the same result as one at a time)
        how.resize(ms.size());
        for_channel_lanes(ms.size(), [](std::size_t) { return true; }, [&](std::size_t c, auto lanes_type) {
            using D = decltype(lanes_type);
            const mask_of<D> ok =
                certified<Backward>(MomentsOf<D>::gather(&ms[c]), eps, tol, dy_squares_rel(first, rows));
            for (int j = 0; j < kLanesOf<D>; ++j) how[c + j] = ok_lane(ok, j) ? Certified::fast : Certified::exact;
        });
        for (std::size_t c = 0; c < skip.size(); ++c)
            if (skip[c]) ms[c] = preview_ms[c], how[c] = Certified::exact;
    }
    std::vector<std::int64_t> todo;
    for (std::size_t c = 0; c < ms.size(); ++c)
        if (how[c] != Certified::fast) todo.push_back(std::int64_t(c));
    if constexpr (is_float) {
        if (!todo.empty()) { // float32: the biased sums, certified for pass B in double or in double-double
            sum_again<T, Backward, Summation::biased>(x, dy, l, blocks, threads, todo, ms);
            const double dy_rel = dy_squares_rel(Summation::biased, rows);
            std::vector<std::int64_t> left;
            for (std::int64_t c : todo) {
                const Moments& m = ms[std::size_t(c)];
                if (certified<Backward>(m, eps, kFloat32Tolerance, dy_rel)) how[std::size_t(c)] = Certified::fast;
                else if (Backward && certified<Backward>(m, eps, kFloat32CarefulTolerance, dy_rel))
                    how[std::size_t(c)] = Certified::careful;
                else left.push_back(c);
            }
            todo = std::move(left);
        }
    } else if (!todo.empty()) { // float64: channels far from 0 against their spread, centred
        // Centred on the mean the biased sums found, x − μ is exact for every x when all of
        // them are within [μ/2, 2μ]; a channel whose largest |x| is beyond 2|μ| cannot pass
        // and is not tried. A tile with a value out of range poisons the channel's sums.
        std::vector<double> centres(ms.size());
        std::vector<std::int64_t> centred, left;
        for (std::int64_t c : todo) {
            const Moments& m = ms[std::size_t(c)];
            centres[std::size_t(c)] = m.mean.hi;
            (m.max_abs <= 2 * std::abs(m.mean.hi) ? centred : left).push_back(c);
        }
        if (!centred.empty()) {
            sum_again<T, Backward, Summation::centred>(x, dy, l, blocks, threads, centred, ms, centres.data());
            const double dy_rel = dy_squares_rel(Summation::centred, rows);
            for (std::int64_t c : centred)
                if (certified<Backward>(ms[std::size_t(c)], eps, tol, dy_rel)) how[std::size_t(c)] = Certified::fast;
                else left.push_back(c);
            std::sort(left.begin(), left.end());
        }
        todo = std::move(left);
    }
    if (!todo.empty()) sum_again<T, Backward, Summation::exact>(x, dy, l, blocks, threads, todo, ms);
    return ms;
}

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

/// p[c] (p[c..c+3] for v4d) in double, or `absent` when there is no p.
template <class D, class T> D values(const T* p, std::size_t c, double absent) {
    return p ? lanes<D>(p, c) : detail::broadcast<D>(absent);
}

/// Lane j of a dd_of<D>, as one dd.
template <class D> dd lane(const dd_of<D>& v, int j) { return {lane(v.hi, j), lane(v.lo, j)}; }

/// for_channel_lanes over the fast channels four at a time, when all four are.
template <class F> void for_fast_channel_lanes(const std::vector<char>& fast, F&& f) {
    for_channel_lanes(
        fast.size(), [&](std::size_t c) { return fast[c] && fast[c + 1] && fast[c + 2] && fast[c + 3]; }, f);
}

int threads_for(const Layout& l, int threads) {
    return l.size() < kSerialBelow ? 1 : detail::resolve_threads(threads);
}

/// The threads for pass B over outer rows [o0, o1): 1 below kSerialBelow values.
int threads_for_rows(const Layout& l, std::int64_t o0, std::int64_t o1, int threads) {
    return (o1 - o0) * l.channels * l.inner < kSerialBelow ? 1 : threads;
}

/// Pass B over outer rows [o0, o1): calls run(offset, c0, count, inner, rows) on runs
/// covering them, in parallel. A run is `rows` times `count` consecutive channels from c0,
/// each with `inner` values, at `offset` in the whole tensor: with inner == 1, whole rows
/// of channels (vectorized across channels), a chunk of about kPassBChunk values in one
/// call; else one channel's `inner` values (rows == 1). The threads take the chunks as
/// they come (parallel_chunks): with an even split, 65536 x 256 float32 backward on two
/// threads waited 0.3-3 ms for the slower core. Every output element is computed alone,
/// so the split between threads cannot change a bit. `whole`: the channels between one
/// row and the next (a group of channels, inner > 1, as in Blocks).
template <class F>
void for_rows_parallel(const Layout& l, std::int64_t whole, std::int64_t o0, std::int64_t o1, int threads, F&& run) {
    threads = threads_for_rows(l, o0, o1, threads);
    assert(whole == l.channels || l.inner > 1);
    if (l.inner == 1) {
        const std::int64_t grain = threads > 1 ? kPassBChunk / l.channels : 0; // (no division for one thread)
        detail::parallel_chunks(o1 - o0, grain, threads, [&](std::int64_t b, std::int64_t e) {
            run((o0 + b) * l.channels, std::int64_t{0}, l.channels, std::int64_t{1}, e - b);
            detail::simd::stream_fence(); // the kernels may have used non-temporal stores
        });
    } else {
        const std::int64_t r0 = o0 * l.channels, grain = std::max<std::int64_t>(1, kPassBChunk / l.inner);
        detail::parallel_chunks((o1 - o0) * l.channels, grain, threads, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t r = r0 + b; r < r0 + e; ++r) {
                const std::int64_t o = r / l.channels, c = r % l.channels;
                run((o * whole + c) * l.inner, c, std::int64_t{1}, l.inner, std::int64_t{1});
            }
            detail::simd::stream_fence();
        });
    }
}

/// dst[o, c, k] = src[o, c, k] for outer rows [o0, o1) of the channels that are not fast;
/// src is the whole tensor (l, contiguous), dst holds rows [o0, o1) only, `whole`
/// channels apart (as in Blocks).
template <class T>
void take_slow_channels(const Layout& l, std::int64_t whole, const std::vector<char>& fast, const T* src, T* dst,
                        std::int64_t o0, std::int64_t o1) {
    for (std::int64_t o = o0; o < o1; ++o)
        for (std::int64_t c = 0; c < l.channels; ++c)
            if (!fast[c]) {
                const std::int64_t from = (o * l.channels + c) * l.inner, to = ((o - o0) * whole + c) * l.inner;
                std::copy(src + from, src + from + l.inner, dst + to);
            }
}

/// The channels of a group (x at its first channel, rows whole·inner values apart) as a
/// contiguous tensor of l, for the exact kernel; empty when x is contiguous already.
template <class T> std::vector<T> contiguous_copy(const T* x, const Layout& l, std::int64_t whole) {
    if (whole == l.channels || x == nullptr) return {};
    std::vector<T> copy(std::size_t(l.size()));
    for (std::int64_t o = 0; o < l.outer; ++o)
        std::copy(x + o * whole * l.inner, x + (o * whole + l.channels) * l.inner,
                  copy.begin() + o * l.channels * l.inner);
    return copy;
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
/// added plainly. 22 operations instead of 34, and a shorter chain: measured 13.3 → 9.8
/// cycles per vector in cache. Its error bound has |K| and |x·H| where the centred form
/// has |B| and |(x − μ)·H|, which gain |μ·H|: so it is used where |μ| ≤ 4σ, where that
/// costs at most a few bits of the ~2^-104 (docs/derivation.md).
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

// ---- pass B kernels ---------------------------------------------------------------------------
//
// Outputs larger than kStreamBytes are written with non-temporal stores: they would only
// evict the inputs from the caches, and a normal store also reads each line first.

constexpr std::int64_t kStreamBytes = 16 << 20;
/// How far ahead of a vector pass B prefetches its inputs (write_each), as pass A's run
/// kernels do: a chunk of kRunTile.terms steps of eight float64.
constexpr std::size_t kReadAhead = 2048;

/// Streamed stores slow to a crawl where the output sits a little ahead of an input,
/// modulo 4 KiB: when out − in is 16 to about 160 bytes (mod 4096), each load seems to
/// wait for the streamed store to the line it aliases (same address bits 0-11) to drain.
/// Measured on Ice Lake, 65536 x 256 float32, one thread: forward 16.9 ms at 0 bytes,
/// 276 ms at 16, 149 at 32, 96 at 64, 23 at 128, 20 at 144 and 17-19 from 160 to 4032;
/// backward 25 ms at 0, 309 at 16 (out − x and out − dy alike); float64 forward 36 ms at
/// 0, 218 at 16, 61 at 64. Within kAliasBytes, pass B stores in the ordinary way, which
/// is not hurt (float32 forward 18-21 ms from 16 to 144 bytes, backward 27 at 16; float64
/// forward 38 at 16).
constexpr std::uintptr_t kAliasBytes = 160;

/// Whether streaming to `out` stays clear of that: every input is at 0 or beyond
/// kAliasBytes behind it, modulo 4 KiB.
template <class T, class... In> bool stream_clear_of(const T* out, const In*... in) {
    auto behind = [&](const void* p) {
        return (reinterpret_cast<std::uintptr_t>(out) - reinterpret_cast<std::uintptr_t>(p)) % 4096;
    };
    return ((in == nullptr || behind(in) == 0 || behind(in) > kAliasBytes) && ...);
}

/// Calls f(std::true_type) when the `bytes` of output are to be streamed (many, and
/// `clear`: stream_clear_of), else f(std::false_type), so that kernels can take the
/// choice as a template argument.
template <class F> void with_streaming(std::int64_t bytes, bool clear, F&& f) {
    if (bytes >= kStreamBytes && clear) f(std::true_type{});
    else f(std::false_type{});
}

/// Whether eight-lane vectors from these arrays stay within cache lines: every pointer on
/// a multiple of eight values (32 bytes of float, 64 of double).
template <class T, class... Ts> bool eight_aligned(const T* p, const Ts*... ps) {
    return ((reinterpret_cast<std::uintptr_t>(p) | ... | reinterpret_cast<std::uintptr_t>(ps)) % (8 * sizeof(T))) == 0;
}

/// out[i..] = f(D{}, i) for i in [0, n), f giving the values of lanes<D>(…, i): eight
/// lanes (v8d) where the build has AVX-512 and `wide` says the arrays are eight_aligned,
/// then four (v4d), then one (double). f does the same operations on each lane of any D,
/// so the bits do not depend on the width. When Stream, the vectors are streamed from
/// where `out` is aligned for four lanes (16 bytes of float, 32 of double; eight lanes are
/// streamed as two fours), the lanes before that stored one by one.
///
/// Eight lanes are for Intel's AVX-512 cores (Ice Lake server, this project's machines
/// since 2026-12), whose two 512-bit FMA units do eight lanes in about the time of four
/// (measured there: 0.15 ns per v4d FMA, 0.19 per v8d, ten independent chains); Zen 4,
/// the machines before, splits a v8d in two and measured no gain. On Ice Lake they are
/// faster on aligned arrays (NHWC (32, 56, 56, 64) float32 backward, one thread,
/// 11.0-11.7 → 9.1-10.5 ms) and slower on arrays 16 bytes past a line, as malloc gives
/// (65536 x 256 float32 backward 25 → 28-29 ms: eight-lane loads that cross lines), hence
/// `wide`. Aligning the output for eight lanes made that worse (1.5 times): rows begun by
/// ordinary stores into the lines being streamed.
///
/// `ahead`: arrays that f reads at the same indices, prefetched kReadAhead bytes ahead of
/// each vector: the hardware's prefetchers alone left pass B waiting on memory. One
/// thread on Ice Lake, interleaved runs: NCHW (32, 64, 56, 56) float64 backward 19.4-20.1
/// → 18.6-19.1 ms, forward 13.4-14.6 → 12.4-13.9; float32 forward 6.1-6.7 → 4.9-6.2;
/// over rows, NHWC float32 forward 7.3-7.5 → 6.7, 65536 x 256 float32 forward 19-21.6 →
/// 17.2-19.1, float64 backward 57-60 → 53.5-56.7 ms.
template <bool Stream, class T, class F, class... In>
inline void write_each(T* __restrict out, std::int64_t n, [[maybe_unused]] bool wide, F&& f, const In*... ahead) {
    using namespace detail::simd;
    const auto prefetch = [&]([[maybe_unused]] std::int64_t i) {
        (prefetch_l1(ahead, i + std::int64_t(kReadAhead / sizeof(In))), ...);
    };
    std::int64_t i = 0;
    if constexpr (Stream)
        for (; i < n && reinterpret_cast<std::uintptr_t>(out + i) % (kWidth * sizeof(T)) != 0; ++i)
            out[i] = T(f(0.0, i));
#if defined(__AVX512F__)
    for (; wide && i + 8 <= n; i += 8) {
        prefetch(i);
        if constexpr (Stream) stream(out + i, f(v8d{}, i));
        else store(out + i, f(v8d{}, i));
    }
#endif
    for (; i + kWidth <= n; i += kWidth) {
        prefetch(i);
        if constexpr (Stream) stream(out + i, f(v4d{}, i));
        else store(out + i, f(v4d{}, i));
    }
    for (; i < n; ++i) out[i] = T(f(0.0, i));
}

/// out[i] = vec(i) (a v4d of lanes i..i+3) or one(i) (a double for one i), four lanes at
/// most: write_each for kernels written apart for a vector and for one value.
template <bool Stream, class T, class FV, class FS, class... In>
inline void write_lanes(T* __restrict out, std::int64_t n, FV&& vec, FS&& one, const In*... ahead) {
    write_each<Stream>(
        out, n, false,
        [&]<class D>(D, std::int64_t i) {
            if constexpr (std::is_same_v<D, double>) return one(i);
            else return vec(i);
        },
        ahead...);
}

/// When rows of C channels are V whole vectors, V ≤ kNarrowVectors: calls
/// f(std::integral_constant<int, V>) and returns true; else returns false. A kernel over
/// rows of few channels can then keep its per-channel coefficients in registers instead
/// of loading them again for every row (the per-call cost of small tensors).
constexpr int kNarrowVectors = 4;
template <class F> bool with_narrow_rows(std::int64_t C, F&& f) {
    using detail::simd::kWidth;
    const auto V = C % kWidth == 0 ? C / kWidth : 0;
    if (V == 1) f(std::integral_constant<int, 1>{});
    else if (V == 2) f(std::integral_constant<int, 2>{});
    else if (V == 3) f(std::integral_constant<int, 3>{});
    else if (V == kNarrowVectors) f(std::integral_constant<int, kNarrowVectors>{});
    else return false;
    return true;
}

/// Pass B of forward, float32: y = a·((x − μh) − μl) + β, over `rows` channels-last rows
/// of C channels, four lanes at a time (double's 2^-53 is far below float32's half ulp).
template <bool Stream>
[[gnu::noinline]] void normalize_rows_plain(const float* __restrict x, float* __restrict y, std::int64_t C,
                                            std::int64_t rows, const double* __restrict mh,
                                            const double* __restrict ml, const double* __restrict ah,
                                            const double* __restrict b) {
    using namespace detail::simd;
    // few channels: the same operations, the coefficients in registers
    if (!Stream && with_narrow_rows(C, [&](auto v_const) {
            constexpr int V = decltype(v_const)::value;
            v4d m[V], mlo[V], a[V], bv[V];
            for (int j = 0; j < V; ++j)
                m[j] = load(mh + j * kWidth), mlo[j] = load(ml + j * kWidth), a[j] = load(ah + j * kWidth),
                bv[j] = load(b + j * kWidth);
            for (std::int64_t r = 0; r < rows; ++r, x += C, y += C)
#pragma GCC unroll 4
                for (int j = 0; j < V; ++j)
                    store(y + j * kWidth, fma(a[j], (load(x + j * kWidth) - m[j]) - mlo[j], bv[j]));
        }))
        return;
#if defined(__AVX512F__)
    // AVX-512, rows of whole vectors of eight, y on 32 bytes: eight lanes (v8d), the same
    // operations in half the instructions. One thread, 5 runs interleaved with the four
    // lanes: NHWC (32, 56, 56, 64) 1.65-1.88 → 1.52-1.65 ms, 65536 x 256 5.67-5.97 →
    // 5.58-5.70 ms; with two threads (memory-bound) the same.
    if (C % 8 == 0 && reinterpret_cast<std::uintptr_t>(y) % 32 == 0) {
        for (std::int64_t r = 0; r < rows; ++r, x += C, y += C)
            for (std::int64_t c = 0; c < C; c += 8) {
                prefetch_l1(x, c + std::int64_t(kReadAhead / sizeof(float)));
                const v8d v = fma(load8(ah + c), (load8(x + c) - load8(mh + c)) - load8(ml + c), load8(b + c));
                if constexpr (Stream) stream(y + c, v);
                else store(y + c, v);
            }
        return;
    }
#endif
    for (std::int64_t r = 0; r < rows; ++r, x += C, y += C)
        write_lanes<Stream>(
            y, C,
            [&](std::int64_t c) { return fma(load(ah + c), (load(x + c) - load(mh + c)) - load(ml + c), load(b + c)); },
            [&](std::int64_t c) { return std::fma(ah[c], (double(x[c]) - mh[c]) - ml[c], b[c]); }, x);
}

/// The same over a run of one channel's values: eight lanes where x and y are
/// eight_aligned, which streams 32 bytes at a time (NCHW (32, 64, 56, 56) float32 forward,
/// two threads, 2.27 → 1.86 ms; one thread within the noise).
template <bool Stream>
[[gnu::noinline]] void normalize_run_plain(const float* __restrict x, float* __restrict y, std::int64_t len,
                                           double mh, double ml, double ah, double b) {
    using detail::broadcast;
    write_each<Stream>(y, len, eight_aligned(x, y), [&]<class D>(D, std::int64_t i) {
        return fused(broadcast<D>(ah), D(D(lanes<D>(x, i) - broadcast<D>(mh)) - broadcast<D>(ml)), broadcast<D>(b));
    }, x);
}

/// Pass B of backward from certified plain sums (float32): dx = a·((dy − B) − (x − μ)·H),
/// in double, over `rows` channels-last rows of C channels.
template <bool Stream>
[[gnu::noinline]] void input_gradient_rows_plain(const float* __restrict x, const float* __restrict g,
                                                 float* __restrict dx, std::int64_t C, std::int64_t rows,
                                                 const double* __restrict mh, const double* __restrict ah,
                                                 const double* __restrict Bh, const double* __restrict Hh) {
    using namespace detail::simd;
    // few channels: the same operations, the coefficients in registers
    if (!Stream && with_narrow_rows(C, [&](auto v_const) {
            constexpr int V = decltype(v_const)::value;
            v4d m[V], a[V], B[V], H[V];
            for (int j = 0; j < V; ++j)
                m[j] = load(mh + j * kWidth), a[j] = load(ah + j * kWidth), B[j] = load(Bh + j * kWidth),
                H[j] = load(Hh + j * kWidth);
            for (std::int64_t r = 0; r < rows; ++r, x += C, g += C, dx += C)
#pragma GCC unroll 4
                for (int j = 0; j < V; ++j) {
                    const v4d d = load(x + j * kWidth) - m[j], w = load(g + j * kWidth) - B[j];
                    store(dx + j * kWidth, a[j] * fma(-d, H[j], w));
                }
        }))
        return;
    for (std::int64_t r = 0; r < rows; ++r, x += C, g += C, dx += C)
        write_each<Stream>(dx, C, eight_aligned(x, g, dx), [&]<class D>(D, std::int64_t c) {
            const D d = lanes<D>(x, c) - lanes<D>(mh, c), w = lanes<D>(g, c) - lanes<D>(Bh, c);
            return D(lanes<D>(ah, c) * fused(-d, lanes<D>(Hh, c), w));
        }, x, g);
}

/// The same over a run of one channel's values.
template <bool Stream>
[[gnu::noinline]] void input_gradient_run_plain(const float* __restrict x, const float* __restrict g,
                                                float* __restrict dx, std::int64_t len, double mh, double ah,
                                                double Bh, double Hh) {
    using namespace detail::simd;
    write_each<Stream>(dx, len, eight_aligned(x, g, dx), [&]<class D>(D, std::int64_t i) {
        const D d = lanes<D>(x, i) - detail::broadcast<D>(mh), w = lanes<D>(g, i) - detail::broadcast<D>(Bh);
        return D(detail::broadcast<D>(ah) * fused(-d, detail::broadcast<D>(Hh), w));
    }, x, g);
}

/// Pass B of forward, float64: normalize_dd over `rows` channels-last rows of C channels.
template <bool Stream>
[[gnu::noinline]] void normalize_rows_dd(const double* __restrict x, double* __restrict y, std::int64_t C,
                                         std::int64_t rows, const double* __restrict mh, const double* __restrict ml,
                                         const double* __restrict ah, const double* __restrict al,
                                         const double* __restrict b) {
    using namespace detail::simd;
    for (std::int64_t r = 0; r < rows; ++r, x += C, y += C)
        write_lanes<Stream>(
            y, C,
            [&](std::int64_t c) {
                return normalize_dd(load(x + c), load(mh + c), load(ml + c), load(ah + c), load(al + c), load(b + c));
            },
            [&](std::int64_t c) { return normalize_dd(x[c], mh[c], ml[c], ah[c], al[c], b[c]); }, x);
}

/// The same over a run of one channel's values.
template <bool Stream>
[[gnu::noinline]] void normalize_run_dd(const double* __restrict x, double* __restrict y, std::int64_t len, double mh,
                                        double ml, double ah, double al, double b) {
    using namespace detail::simd;
    const v4d m = splat(mh), mlo = splat(ml), a = splat(ah), alo = splat(al), bv = splat(b);
    write_lanes<Stream>(
        y, len, [&](std::int64_t i) { return normalize_dd(load(x + i), m, mlo, a, alo, bv); },
        [&](std::int64_t i) { return normalize_dd(x[i], mh, ml, ah, al, b); }, x);
}

/// Which form of dx the channels of a rows kernel take: the offset form for some (per
/// channel, tested per vector), for all, or for none (the centred form everywhere).
enum class DxForms { mixed, all_offset, all_centred };

/// Pass B of backward, float64 (and float32 when every channel needs every error term):
/// input_gradient_dd over `rows` channels-last rows of C channels, or the offset form
/// where offset4[c] (four channels from c) or offset[c] says so. When every channel takes
/// the same form (Forms), there is no test per vector, and eight lanes where the build has
/// them. Every offset form: in cache, 2.97 → 2.70 ns per vector of four. Every centred
/// form (float64 data far from 0 against its spread, as x + 5·10^4): 1024 x 256, one
/// thread, the whole backward call 1.09-1.10 → 0.89-0.90 ms on Ice Lake (65536 x 256 waits
/// on memory either way: B/A 0.92-0.98 in noisy interleaved runs).
template <bool Stream, DxForms Forms, class T>
[[gnu::noinline]] void input_gradient_rows_dd(const T* __restrict x, const T* __restrict g,
                                              T* __restrict dx, std::int64_t C, std::int64_t rows,
                                              const double* __restrict mh, const double* __restrict ml,
                                              const double* __restrict ah, const double* __restrict al,
                                              const double* __restrict Bh, const double* __restrict Bl,
                                              const double* __restrict Hh, const double* __restrict Hl,
                                              const double* __restrict Kh, const double* __restrict Kl,
                                              const char* __restrict offset, const char* __restrict offset4) {
    using namespace detail::simd;
    if constexpr (Forms != DxForms::mixed) {
        for (std::int64_t r = 0; r < rows; ++r, x += C, g += C, dx += C)
            write_each<Stream>(dx, C, eight_aligned(x, g, dx), [&]<class D>(D, std::int64_t c) {
                if constexpr (Forms == DxForms::all_offset)
                    return input_gradient_offset_dd(lanes<D>(x, c), lanes<D>(g, c), lanes<D>(ah, c), lanes<D>(al, c),
                                                    lanes<D>(Kh, c), lanes<D>(Kl, c), lanes<D>(Hh, c), lanes<D>(Hl, c));
                else
                    return input_gradient_dd(lanes<D>(x, c), lanes<D>(g, c), lanes<D>(mh, c), lanes<D>(ml, c),
                                             lanes<D>(ah, c), lanes<D>(al, c), lanes<D>(Bh, c), lanes<D>(Bl, c),
                                             lanes<D>(Hh, c), lanes<D>(Hl, c));
            }, x, g);
        return;
    }
    for (std::int64_t r = 0; r < rows; ++r, x += C, g += C, dx += C)
        write_lanes<Stream>(
            dx, C,
            [&](std::int64_t c) {
                if (offset4[c])
                    return input_gradient_offset_dd(load(x + c), load(g + c), load(ah + c), load(al + c),
                                                    load(Kh + c), load(Kl + c), load(Hh + c), load(Hl + c));
                return input_gradient_dd(load(x + c), load(g + c), load(mh + c), load(ml + c), load(ah + c),
                                         load(al + c), load(Bh + c), load(Bl + c), load(Hh + c), load(Hl + c));
            },
            [&](std::int64_t c) {
                const double xc = double(x[c]), gc = double(g[c]);
                if (offset[c])
                    return input_gradient_offset_dd(xc, gc, ah[c], al[c], Kh[c], Kl[c], Hh[c], Hl[c]);
                return input_gradient_dd(xc, gc, mh[c], ml[c], ah[c], al[c], Bh[c], Bl[c], Hh[c], Hl[c]);
            }, x, g);
}

/// The same over a run of one channel's values.
template <bool Stream, class T>
[[gnu::noinline]] void input_gradient_run_dd(const T* __restrict x, const T* __restrict g, T* __restrict dx,
                                             std::int64_t len, double mh, double ml, double ah, double al, double Bh,
                                             double Bl, double Hh, double Hl) {
    using namespace detail::simd;
    using detail::broadcast;
    write_each<Stream>(dx, len, eight_aligned(x, g, dx), [&]<class D>(D, std::int64_t i) {
        return input_gradient_dd(lanes<D>(x, i), lanes<D>(g, i), broadcast<D>(mh), broadcast<D>(ml), broadcast<D>(ah),
                                 broadcast<D>(al), broadcast<D>(Bh), broadcast<D>(Bl), broadcast<D>(Hh),
                                 broadcast<D>(Hl));
    }, x, g);
}

/// The same in the offset form (input_gradient_offset_dd).
template <bool Stream, class T>
[[gnu::noinline]] void input_gradient_run_offset_dd(const T* __restrict x, const T* __restrict g, T* __restrict dx,
                                                    std::int64_t len, double ah, double al, double Kh, double Kl,
                                                    double Hh, double Hl) {
    using namespace detail::simd;
    using detail::broadcast;
    write_each<Stream>(dx, len, eight_aligned(x, g, dx), [&]<class D>(D, std::int64_t i) {
        return input_gradient_offset_dd(lanes<D>(x, i), lanes<D>(g, i), broadcast<D>(ah), broadcast<D>(al),
                                        broadcast<D>(Kh), broadcast<D>(Kl), broadcast<D>(Hh), broadcast<D>(Hl));
    }, x, g);
}

} // namespace

// ---- the passes ------------------------------------------------------------------------------

/// p + offset, or null for null p.
template <class P> P shifted(P p, std::int64_t offset) { return p ? p + offset : nullptr; }

template <class T>
ForwardPass<T>::ForwardPass(const T* x, const T* gamma, const T* beta, const Layout& l, double eps, int threads)
    : ForwardPass(x, gamma, beta, l, l.channels, 0, eps, threads) {}

template <class T>
ForwardPass<T>::ForwardPass(const T* x, const T* gamma, const T* beta, const Layout& l, std::int64_t whole,
                            std::int64_t c0, double eps, int threads)
    : x_(x + c0 * l.inner), gamma_(shifted(gamma, c0)), beta_(shifted(beta, c0)), l_(l), whole_(whole), eps_(eps),
      threads_(threads_for(l, threads)) {
    assert(l.channels >= 1 && l.per_channel() >= 2 && eps >= 0);
    assert(c0 >= 0 && c0 + l.channels <= whole && (whole == l.channels || l.inner > 1));
    constexpr bool is_double = sizeof(T) == 8; // the fast path's range check applies to float64
    std::vector<Certified> how; // (forward's pass B is the same for every stage)
    const MomentsVector ms = certified_moments<T, false>(x_, nullptr, l, whole_, eps, threads_, how);
    fast_ = in_fast_range(ms, is_double);

    // Per channel: y = a·(x − μ) + β with a = γ·invstd.
    const std::size_t C = std::size_t(l.channels);
    mean_.resize(C), invstd_.resize(C);
    const std::size_t P = padded(C); // μ (hi, lo), a (hi, lo), β: arrays on cache lines
    double *mu_hi = line_arrays(coefficients_, 5, C), *mu_lo = mu_hi + P, *a_hi = mu_lo + P, *a_lo = a_hi + P,
           *b = a_lo + P;
    for_fast_channel_lanes(fast_, [&](std::size_t c, auto lanes_type) {
        using D = decltype(lanes_type);
        const MomentsOf<D> m = MomentsOf<D>::gather(&ms[c]);
        const bool fast = kLanesOf<D> > 1 || fast_[c];
        const dd_of<D> inv = fast ? inverse_std(m, eps, c) : dd_of<D>{detail::broadcast<D>(NAN), D{}};
        detail::to_each(&mean_[c], m.mean), detail::to_each(&invstd_[c], inv);
        const dd_of<D> a = detail::mul(inv, values<D>(gamma_, c, 1.0));
        put(mu_hi, c, m.mean.hi), put(mu_lo, c, m.mean.lo), put(a_hi, c, a.hi), put(a_lo, c, a.lo);
        put(b, c, values<D>(beta_, c, 0.0));
    });
}

/// The channels beyond the fast path's range (non-finite data, extreme float64
/// magnitudes): the exact kernel, run on first need.
template <class T> void ForwardPass<T>::run_exact() const {
    if (all_fast(fast_)) return;
    std::call_once(*exact_done_, [&] {
        const std::size_t C = std::size_t(l_.channels);
        std::vector<T> y(std::size_t(l_.size())), mean_exact(C), invstd_exact(C);
        const std::vector<T> x = contiguous_copy(x_, l_, whole_); // (a group of channels)
        detail::forward_exact(x.empty() ? x_ : x.data(), l_, gamma_, beta_, eps_, y.data(), mean_exact.data(),
                              invstd_exact.data());
        for (std::size_t c = 0; c < C; ++c)
            if (!fast_[c]) mean_[c] = mean_exact[c], invstd_[c] = invstd_exact[c];
        exact_ = std::move(y);
    });
}

template <class T> bool ForwardPass<T>::inputs_proven_finite() const { return all_fast(fast_); }

template <class T> void ForwardPass<T>::statistics(T* mean, T* invstd) const {
    run_exact();
    if (mean) std::copy(mean_.begin(), mean_.end(), mean);
    if (invstd) std::copy(invstd_.begin(), invstd_.end(), invstd);
}

template <class T> void ForwardPass<T>::apply(std::int64_t o0, std::int64_t o1, T* y) const {
    run_exact();
    const std::size_t C = std::size_t(l_.channels);
    const std::size_t P = padded(C);
    const double* __restrict pmh = first_line(coefficients_);
    const double *__restrict pml = pmh + P, *__restrict pah = pml + P, *__restrict pal = pah + P,
                               *__restrict pb = pal + P;
    const std::int64_t base = o0 * whole_ * l_.inner; // y holds rows [o0, o1)
    const std::int64_t out_bytes = (o1 - o0) * whole_ * l_.inner * std::int64_t(sizeof(T)); // (all groups')
    // pass B: x and y are (outer, C, inner); a run is `count` channels of `inner` values.
    for_rows_parallel(l_, whole_, o0, o1, threads_, [&](std::int64_t off, std::int64_t c0, std::int64_t count, std::int64_t inner,
                                                std::int64_t rows) {
        const T* __restrict xs = x_ + off;
        T* __restrict ys = y + (off - base);
        with_streaming(out_bytes, stream_clear_of(ys, xs), [&](auto stream) {
            constexpr bool S = decltype(stream)::value;
            if constexpr (sizeof(T) == 4) { // y = a·((x − μh) − μl) + β in double
                if (inner == 1)
                    normalize_rows_plain<S>(xs, ys, count, rows, pmh + c0, pml + c0, pah + c0, pb + c0);
                else
                    for (std::int64_t j = 0; j < count; ++j)
                        normalize_run_plain<S>(xs + j * inner, ys + j * inner, inner, pmh[c0 + j], pml[c0 + j],
                                               pah[c0 + j], pb[c0 + j]);
            } else { // in double-double
                if (inner == 1)
                    normalize_rows_dd<S>(xs, ys, count, rows, pmh + c0, pml + c0, pah + c0, pal + c0, pb + c0);
                else
                    for (std::int64_t j = 0; j < count; ++j)
                        normalize_run_dd<S>(xs + j * inner, ys + j * inner, inner, pmh[c0 + j], pml[c0 + j],
                                            pah[c0 + j], pal[c0 + j], pb[c0 + j]);
            }
        });
    });
    if (!exact_.empty()) take_slow_channels(l_, whole_, fast_, exact_.data(), y, o0, o1);
}

template <class T>
BackwardPass<T>::BackwardPass(const T* x, const T* gamma, const T* dy, const Layout& l, double eps, int threads)
    : BackwardPass(x, gamma, dy, l, l.channels, 0, eps, threads) {}

template <class T>
BackwardPass<T>::BackwardPass(const T* x, const T* gamma, const T* dy, const Layout& l, std::int64_t whole,
                              std::int64_t c0, double eps, int threads)
    : x_(x + c0 * l.inner), gamma_(shifted(gamma, c0)), dy_(dy + c0 * l.inner), l_(l), whole_(whole), eps_(eps),
      threads_(threads_for(l, threads)) {
    assert(l.channels >= 1 && l.per_channel() >= 2 && eps >= 0);
    assert(c0 >= 0 && c0 + l.channels <= whole && (whole == l.channels || l.inner > 1));
    constexpr bool is_double = sizeof(T) == 8; // the fast path's range check applies to float64
    // careful_: the channels whose fast sums were not certified, summed again (float32:
    // biased, or error-free; float64: error-free). float32: their dx needs every error term
    // too (float64 dx always has them). For those summed error-free, pass B's own bound
    // is checked (pass_b_enough)
    std::vector<Certified> how;
    const MomentsVector ms = certified_moments<T, true>(x_, dy_, l, whole_, eps, threads_, how);
    fast_ = in_fast_range(ms, is_double);
    careful_.resize(how.size());
    for (std::size_t c = 0; c < how.size(); ++c) careful_[c] = how[c] != Certified::fast;
    // channels summed again error-free: is double-double pass B enough?
    const Tolerance& careful_tol = is_double ? kFloat64Tolerance : kFloat32CarefulTolerance;
    for (std::size_t c = 0; c < ms.size(); ++c)
        if (how[c] == Certified::exact && fast_[c] && !pass_b_enough(ms[c], eps, careful_tol))
            fast_[c] = 0; // dx a tiny fraction of |dy|, |B| or |μ·H|: the exact kernel

    // Per channel: dx = a·(dy − B − (x − μ)·H) with a = γ·invstd, B = dβ/m, H = invstd·dγ/m.
    const std::size_t C = std::size_t(l.channels);
    const double m_count = double(l.per_channel());
    // μ, a, B, H (hi, lo each), and K for the double-double pass B (float64, and float32
    // with careful channels). Only what is used: the tiny float32 case took 0.08 µs longer
    // with 10·C (1280 bytes, past glibc's per-thread cache of small blocks); 8 arrays on
    // cache lines take 1080 bytes for C = 16, timed as fast as 1024
    dgamma_.resize(C), dbeta_.resize(C);
    const bool with_K = is_double || std::any_of(careful_.begin(), careful_.end(), [](char k) { return k; });
    if (with_K) offset_form_.assign(C, 0), offset_form4_.assign(C, 0);
    const std::size_t P = padded(C); // arrays on cache lines
    double *mu_hi = line_arrays(coefficients_, with_K ? 10 : 8, C), *mu_lo = mu_hi + P, *a_hi = mu_lo + P,
           *a_lo = a_hi + P, *B_hi = a_lo + P, *B_lo = B_hi + P, *H_hi = B_lo + P, *H_lo = H_hi + P;
    double *K_hi = with_K ? H_lo + P : nullptr, *K_lo = with_K ? K_hi + P : nullptr;
    for_fast_channel_lanes(fast_, [&](std::size_t c, auto lanes_type) {
        using D = decltype(lanes_type);
        const MomentsOf<D> m = MomentsOf<D>::gather(&ms[c]);
        const bool fast = kLanesOf<D> > 1 || fast_[c];
        const dd_of<D> inv = fast ? inverse_std(m, eps, c) : dd_of<D>{detail::broadcast<D>(NAN), D{}};
        const dd_of<D> dg = detail::mul(m.sum_dyd, inv); // dγ = invstd·Σ dy·(x − μ)
        detail::to_each(&dbeta_[c], m.sum_dy), detail::to_each(&dgamma_[c], dg);
        const dd_of<D> a = detail::mul(inv, values<D>(gamma_, c, 1.0));
        const dd_of<D> B = detail::div(m.sum_dy, detail::broadcast<D>(m_count));
        const dd_of<D> H = detail::div(detail::mul(dg, inv), detail::broadcast<D>(m_count));
        put(mu_hi, c, m.mean.hi), put(mu_lo, c, m.mean.lo), put(a_hi, c, a.hi), put(a_lo, c, a.lo);
        put(B_hi, c, B.hi), put(B_lo, c, B.lo), put(H_hi, c, H.hi), put(H_lo, c, H.lo);
        if (with_K) {
            const dd_of<D> K = detail::sub(B, detail::mul(m.mean, H)); // dβ/m − μ·H
            put(K_hi, c, K.hi), put(K_lo, c, K.lo);
            const D sd = detail::simd::sqrt(D(m.m2.hi / m.n));
            for (int j = 0; j < kLanesOf<D>; ++j) // false for NaN
                offset_form_[c + j] = std::abs(lane(m.mean.hi, j)) <= kOffsetFormSpread * lane(sd, j);
        }
    });
    if (with_K)
        for (std::size_t c = 0; c + 3 < C; ++c)
            offset_form4_[c] = offset_form_[c] && offset_form_[c + 1] && offset_form_[c + 2] && offset_form_[c + 3];
}

/// As ForwardPass::run_exact.
template <class T> void BackwardPass<T>::run_exact() const {
    if (all_fast(fast_)) return;
    std::call_once(*exact_done_, [&] {
        const std::size_t C = std::size_t(l_.channels);
        std::vector<T> dx(std::size_t(l_.size())), dgamma_exact(C), dbeta_exact(C);
        const std::vector<T> x = contiguous_copy(x_, l_, whole_), dy = contiguous_copy(dy_, l_, whole_);
        detail::backward_exact(x.empty() ? x_ : x.data(), gamma_, dy.empty() ? dy_ : dy.data(), l_, eps_, dx.data(),
                               dgamma_exact.data(), dbeta_exact.data());
        for (std::size_t c = 0; c < C; ++c)
            if (!fast_[c]) dgamma_[c] = dgamma_exact[c], dbeta_[c] = dbeta_exact[c];
        exact_ = std::move(dx);
    });
}

template <class T> bool BackwardPass<T>::inputs_proven_finite() const { return all_fast(fast_); }

template <class T> void BackwardPass<T>::gradients(T* dgamma, T* dbeta) const {
    run_exact();
    if (dgamma) std::copy(dgamma_.begin(), dgamma_.end(), dgamma);
    if (dbeta) std::copy(dbeta_.begin(), dbeta_.end(), dbeta);
}

template <class T> void BackwardPass<T>::apply(std::int64_t o0, std::int64_t o1, T* dx) const {
    run_exact();
    const std::size_t C = std::size_t(l_.channels);
    const std::size_t P = padded(C);
    const double* __restrict pmh = first_line(coefficients_);
    const double *__restrict pml = pmh + P, *__restrict pah = pml + P, *__restrict pal = pah + P,
                               *__restrict pBh = pal + P, *__restrict pBl = pBh + P, *__restrict pHh = pBl + P,
                               *__restrict pHl = pHh + P;
    const bool with_K = !offset_form_.empty(); // float64, and float32 with careful channels
    const double *__restrict pKh = with_K ? pHl + P : nullptr, *__restrict pKl = with_K ? pKh + P : nullptr;
    const std::int64_t base = o0 * whole_ * l_.inner; // dx holds rows [o0, o1)
    const std::int64_t out_bytes = (o1 - o0) * whole_ * l_.inner * std::int64_t(sizeof(T)); // (all groups')
    // float32 with every channel careful (say dy nearly linear in x everywhere): pass B
    // goes straight to the double-double kernels, with the same operations per value as
    // the careful rows below, and not through the plain kernel first. 65536 x 256, dy =
    // 0.5 + 2x, one thread: pass B 48 → 26 ms.
    const bool all_careful = sizeof(T) == 4 && std::all_of(careful_.begin(), careful_.end(), [](char k) { return k; });
    const bool all_offset = with_K && std::all_of(offset_form_.begin(), offset_form_.end(), [](char k) { return k; });
    const bool all_centred = with_K && std::none_of(offset_form_.begin(), offset_form_.end(), [](char k) { return k; });
    // pass B: term 1 − term 2 − term 3 = dy − dβ/m − x̂·dγ/m, times γ·invstd.
    for_rows_parallel(l_, whole_, o0, o1, threads_, [&](std::int64_t off, std::int64_t c0, std::int64_t count,
                                                        std::int64_t inner, std::int64_t rows) {
        const T* __restrict xs = x_ + off;
        const T* __restrict gs = dy_ + off;
        T* __restrict out = dx + (off - base);
        with_streaming(out_bytes, stream_clear_of(out, xs, gs), [&](auto stream) {
            constexpr bool S = decltype(stream)::value;
            if constexpr (sizeof(T) == 4)
                if (!all_careful) { // certified plain sums; careful channels are redone below
                    if (inner == 1)
                        input_gradient_rows_plain<S>(xs, gs, out, count, rows, pmh + c0, pah + c0, pBh + c0, pHh + c0);
                    else
                        for (std::int64_t j = 0; j < count; ++j)
                            input_gradient_run_plain<S>(xs + j * inner, gs + j * inner, out + j * inner, inner,
                                                        pmh[c0 + j], pah[c0 + j], pBh[c0 + j], pHh[c0 + j]);
                    return;
                }
            // every channel in double-double, in the offset form where it applies
            if (inner == 1) {
                auto rows_dd = all_offset    ? input_gradient_rows_dd<S, DxForms::all_offset, T>
                               : all_centred ? input_gradient_rows_dd<S, DxForms::all_centred, T>
                                             : input_gradient_rows_dd<S, DxForms::mixed, T>;
                rows_dd(xs, gs, out, count, rows, pmh + c0, pml + c0, pah + c0, pal + c0, pBh + c0, pBl + c0, pHh + c0,
                        pHl + c0, pKh + c0, pKl + c0, offset_form_.data() + c0, offset_form4_.data() + c0);
            } else
                for (std::int64_t j = 0; j < count; ++j) {
                    const std::int64_t c = c0 + j;
                    if (offset_form_[std::size_t(c)])
                        input_gradient_run_offset_dd<S, T>(xs + j * inner, gs + j * inner, out + j * inner, inner,
                                                           pah[c], pal[c], pKh[c], pKl[c], pHh[c], pHl[c]);
                    else
                        input_gradient_run_dd<S, T>(xs + j * inner, gs + j * inner, out + j * inner, inner, pmh[c],
                                                    pml[c], pah[c], pal[c], pBh[c], pBl[c], pHh[c], pHl[c]);
                }
        });
    });
    if constexpr (sizeof(T) == 4) { // the float32 channels whose sums were not certified
        std::vector<std::int64_t> careful; // none left when all were done above
        for (std::int64_t c = 0; c < l_.channels && !all_careful; ++c)
            if (careful_[std::size_t(c)]) careful.push_back(c);
        // row by row, so that channels-last data is read once however many channels need it
        // (the same operations on four lanes: four consecutive channels of a row, or four
        // values of a channel's run; the offset form where input_gradient_rows_dd takes it)
        using detail::simd::load, detail::simd::splat, detail::simd::v4d;
        constexpr std::size_t W = detail::simd::kWidth;
        // the coefficients of channel c as lanes: of c..c+3 (load), or c's in each (splat)
        auto coefficients = [&]<class V>(auto lanes, std::int64_t c, bool offset, V (&k)[8]) {
            if (offset) k[0] = lanes(pah + c), k[1] = lanes(pal + c), k[2] = lanes(pKh + c), k[3] = lanes(pKl + c);
            else k[0] = lanes(pmh + c), k[1] = lanes(pml + c), k[2] = lanes(pah + c), k[3] = lanes(pal + c);
            k[4] = lanes(pBh + c), k[5] = lanes(pBl + c), k[6] = lanes(pHh + c), k[7] = lanes(pHl + c);
        };
        auto dx_of = []<class V>(V x, V g, bool offset, const V (&k)[8]) {
            return offset ? input_gradient_offset_dd(x, g, k[0], k[1], k[2], k[3], k[6], k[7])
                          : input_gradient_dd(x, g, k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]);
        };
        auto four = [&](std::int64_t off, bool offset, const v4d (&k)[8]) {
            detail::simd::store(dx + (off - base), dx_of(load(x_ + off), load(dy_ + off), offset, k));
        };
        auto one = [&](std::int64_t off, std::int64_t c) {
            double k[8];
            const bool offset = offset_form_[std::size_t(c)];
            coefficients([](const double* p) { return *p; }, c, offset, k);
            dx[off - base] = float(dx_of(double(x_[off]), double(dy_[off]), offset, k));
        };
        auto row = [&](std::int64_t o) {
            for (std::size_t i = 0; i < careful.size();) {
                const std::int64_t c = careful[i], off = (o * whole_ + c) * l_.inner;
                v4d k[8];
                if (l_.inner == 1 && i + W <= careful.size() && careful[i + W - 1] == c + std::int64_t(W) - 1) {
                    const bool offset = offset_form4_[std::size_t(c)];
                    coefficients([](const double* p) { return load(p); }, c, offset, k);
                    four(off, offset, k), i += W;
                    continue;
                }
                const bool offset = offset_form_[std::size_t(c)];
                coefficients([](const double* p) { return splat(*p); }, c, offset, k);
                std::int64_t j = 0;
                for (; l_.inner > 1 && j + std::int64_t(W) <= l_.inner; j += std::int64_t(W)) four(off + j, offset, k);
                for (; j < l_.inner; ++j) one(off + j, c);
                ++i;
            }
        };
        if (!careful.empty()) {
            const std::int64_t grain = std::max<std::int64_t>(1, kPassBChunk / (l_.channels * l_.inner));
            detail::parallel_chunks(o1 - o0, grain, threads_for_rows(l_, o0, o1, threads_),
                                    [&](std::int64_t b, std::int64_t e) {
                                        for (std::int64_t o = o0 + b; o < o0 + e; ++o) row(o);
                                    });
        }
    }
    if (!exact_.empty()) take_slow_channels(l_, whole_, fast_, exact_.data(), dx, o0, o1);
}

// ---- one call: the passes over groups of channels -----------------------------------------
//
// The two passes over a tensor larger than the caches read its inputs from memory twice.
// Where the tensor has runs (inner > 1, as NCHW), forward() and backward() run it a group
// of channels at a time instead, the groups on the threads: pass A of a group, then its
// pass B, which finds the group's inputs still in L2. Each channel gets the same blocks,
// and so the same bits, as in the passes over the whole tensor (ForwardPass's and
// BackwardPass's group constructors), which the two-step callers (the command line) use.
// NCHW (32, 64, 56, 56) float32 backward on Ice Lake, interleaved runs: 8.3 → 6.9 ms on
// one thread, 4.0 → 3.7 on two.
//
// Only for inputs larger than the last-level cache. Called again and again on the same
// tensor, as in a benchmark, inputs that fit there stay there between calls when each
// call reads them twice, and not when it reads them once: the forward pass of that
// float32 tensor (x of 25.7 MB, L3 of 48 MiB) took 1.75 → 2.03 ms on two threads in
// groups (4.55 → 4.06 on one).

namespace {
std::atomic<std::int64_t> group_threshold_set{0}; // 0: the cache's size
} // namespace

std::int64_t detail::group_threshold() {
    static const std::int64_t cache = [] {
        long bytes = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
        bytes = ::sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
        return bytes > 0 ? std::int64_t(bytes) : std::int64_t(32) << 20;
    }();
    const std::int64_t set = group_threshold_set.load(std::memory_order_relaxed);
    return set > 0 ? set : cache;
}

void detail::set_group_threshold(std::int64_t bytes) { group_threshold_set.store(bytes, std::memory_order_relaxed); }

namespace {

/// The bytes of input (x, and dy for backward) of a group: channels are grouped up to
/// kGroupBytes, and a channel of more than kGroupBytes is a group alone up to
/// kChannelBytes; larger ones take the passes over the whole tensor. L2 holds 1.25 MiB a
/// core on Ice Lake server (1 MiB on Zen 4). Measured on Ice Lake, NCHW (32, 64, 56, 56):
/// float32 backward (0.8 MB a channel) took 4% longer one thread, 11% two, in groups of
/// two channels than one; float64 backward (1.6 MB) 9% less time, 14% two, as groups of
/// one than as the passes over the whole tensor. A harness that mimics the passes' memory
/// traffic saw no gain at 3.2 MB a channel.
constexpr std::int64_t kGroupBytes = 1 << 20, kChannelBytes = 2 << 20;

} // namespace

std::int64_t detail::channels_per_group(const Layout& l, double eps, int inputs, std::size_t element_bytes) {
    const std::int64_t element = inputs * std::int64_t(element_bytes); // bytes of input per value
    if (l.inner == 1 || eps == 0 || l.size() * element < group_threshold()) return 0;
    const std::int64_t bytes = l.per_channel() * element; // of one channel
    if (bytes > kChannelBytes || !Blocks(l, std::size_t(element)).whole_rows) return 0;
    return std::max<std::int64_t>(1, kGroupBytes / bytes);
}

namespace {

/// Calls run(c0, layout) for the groups of `per_group` channels of l, on the threads;
/// layout is l with the group's channels.
template <class F> void for_channel_groups(const Layout& l, std::int64_t per_group, int threads, F&& run) {
    const std::int64_t groups = (l.channels + per_group - 1) / per_group;
    detail::parallel_chunks(groups, 1, detail::resolve_threads(threads), [&](std::int64_t g0, std::int64_t g1) {
        for (std::int64_t g = g0; g < g1; ++g) {
            const std::int64_t c0 = g * per_group;
            run(c0, Layout{l.outer, std::min(per_group, l.channels - c0), l.inner});
        }
    });
}

} // namespace

template <class T>
void forward(const T* x, const T* gamma, const T* beta, const Layout& l, double eps, T* y, T* mean, T* invstd,
             int threads) {
    if (const std::int64_t per_group = detail::channels_per_group(l, eps, 1, sizeof(T))) {
        for_channel_groups(l, per_group, threads, [&](std::int64_t c0, const Layout& group) {
            const ForwardPass<T> pass(x, gamma, beta, group, l.channels, c0, eps, 1);
            pass.statistics(shifted(mean, c0), shifted(invstd, c0));
            pass.apply(0, l.outer, y + c0 * l.inner);
        });
        return;
    }
    const ForwardPass<T> pass(x, gamma, beta, l, eps, threads);
    pass.statistics(mean, invstd);
    pass.apply(0, l.outer, y);
}

template <class T>
void backward(const T* x, const T* gamma, const T* dy, const Layout& l, double eps, T* dx, T* dgamma, T* dbeta,
              int threads) {
    if (const std::int64_t per_group = detail::channels_per_group(l, eps, 2, sizeof(T))) {
        for_channel_groups(l, per_group, threads, [&](std::int64_t c0, const Layout& group) {
            const BackwardPass<T> pass(x, gamma, dy, group, l.channels, c0, eps, 1);
            pass.gradients(shifted(dgamma, c0), shifted(dbeta, c0));
            pass.apply(0, l.outer, dx + c0 * l.inner);
        });
        return;
    }
    const BackwardPass<T> pass(x, gamma, dy, l, eps, threads);
    pass.gradients(dgamma, dbeta);
    pass.apply(0, l.outer, dx);
}

template class ForwardPass<float>;
template class ForwardPass<double>;
template class BackwardPass<float>;
template class BackwardPass<double>;
template void forward<float>(const float*, const float*, const float*, const Layout&, double, float*, float*, float*,
                             int);
template void forward<double>(const double*, const double*, const double*, const Layout&, double, double*, double*,
                              double*, int);
template void backward<float>(const float*, const float*, const float*, const Layout&, double, float*, float*, float*,
                              int);
template void backward<double>(const double*, const double*, const double*, const Layout&, double, double*, double*,
                               double*, int);

} // namespace bnorm
