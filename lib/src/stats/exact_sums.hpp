// Pass A's error-free sums (TwoSum, TwoProd): float64 data, and the channels whose cheaper
// sums were not certified.
#pragma once

#include "lanes.hpp"
#include "prefetch.hpp"
#include "stats/summation.hpp"
#include "stats/sums.hpp"
#include <algorithm>
#include <cstdint>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

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

/// N independent sets of the error-free accumulators (accumulate_exact's), on doubles or
/// on vectors of channels, each sum's N in one array so that loops over the sets vectorize.
template <class D, int N> struct ExactLanes {
    D s1[N] = {}, s1e[N] = {}, s2[N] = {}, s2e[N] = {}, b1[N] = {}, b1e[N] = {}, b2[N] = {}, b2e[N] = {}, mx[N] = {},
      gm[N] = {}, b3[N] = {}, b3e[N] = {};

    /// accumulate_exact on set j.
    template <bool Backward> inline void add(int j, D x, D g, D K) {
        accumulate_exact<Backward>(x, g, K, s1[j], s1e[j], s2[j], s2e[j], mx[j], b1[j], b1e[j], b2[j], b2e[j], gm[j],
                                   b3[j], b3e[j]);
    }
    /// Set j from the sums of channel c of t (c..c+3 for v4d), to go on adding to them.
    template <bool Backward> inline void load(int j, const Sums& t, std::size_t c) {
        s1[j] = lanes<D>(t.s1, c), s1e[j] = lanes<D>(t.s1_err, c);
        s2[j] = lanes<D>(t.s2, c), s2e[j] = lanes<D>(t.s2_err, c), mx[j] = lanes<D>(t.max_abs, c);
        if constexpr (Backward) {
            b1[j] = lanes<D>(t.b1, c), b1e[j] = lanes<D>(t.b1_err, c), b2[j] = lanes<D>(t.b2, c);
            b2e[j] = lanes<D>(t.b2_err, c), gm[j] = lanes<D>(t.dy_max_abs, c);
            b3[j] = lanes<D>(t.b3, c), b3e[j] = lanes<D>(t.b3_err, c);
        }
    }
    /// The inverse: set j back into channel c of t.
    template <bool Backward> inline void store(int j, Sums& t, std::size_t c) const {
        put(t.s1, c, s1[j]), put(t.s1_err, c, s1e[j]), put(t.s2, c, s2[j]), put(t.s2_err, c, s2e[j]);
        put(t.max_abs, c, mx[j]);
        if constexpr (Backward) {
            put(t.b1, c, b1[j]), put(t.b1_err, c, b1e[j]), put(t.b2, c, b2[j]), put(t.b2_err, c, b2e[j]);
            put(t.dy_max_abs, c, gm[j]), put(t.b3, c, b3[j]), put(t.b3_err, c, b3e[j]);
        }
    }
    /// Set j (D = double) added to channel c's sums in t, compensated.
    template <bool Backward> inline void fold_into(int j, Sums& t, std::size_t c) const {
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
};

/// Adds the values v[0, len) (and dy g) of channel c to its sums, in kLanes independent
/// lanes combined in a fixed order.
template <class T, bool Backward> void add_run(const T* v, const T* g, std::int64_t len, std::size_t c, Sums& t) {
    if (t.n[c] == 0) t.K[c] = double(v[0]); // the channel's reference in this block
    const double K = t.K[c];
    ExactLanes<double, kLanes> acc;
    auto step = [&](int j, std::int64_t i) {
        acc.template add<Backward>(j, double(v[i]), Backward ? double(g[i]) : 0.0, K);
    };
    std::int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes)
        for (int j = 0; j < kLanes; ++j) step(j, i + j);
    for (; i < len; ++i) step(0, i);
    for (int j = 0; j < kLanes; ++j) acc.template fold_into<Backward>(j, t, c);
    t.n[c] += double(len);
}

// ---- error-free sums over channels-last tiles (float64 data, and uncertified channels) -----

/// Channels [c, c + V·kWidth) of `rows` channels-last rows (`stride` values apart) added
/// to the error-free sums t, the accumulators in registers across the rows.
template <class T, bool Backward, int V>
inline void add_chunk_exact(const T* __restrict x, const T* __restrict g, std::int64_t stride, std::int64_t rows,
                            std::size_t c, Sums& t, TilePrefetch<T>& prefetch) {
    using namespace detail::simd;
    v4d k[V];
    ExactLanes<v4d, V> acc;
    auto at = [&](int j) { return c + std::size_t(j * kWidth); };
#pragma GCC unroll 4
    for (int j = 0; j < V; ++j) k[j] = load(t.K + at(j)), acc.template load<Backward>(j, t, at(j));
    for (std::int64_t r = 0; r < rows; ++r) {
        prefetch.template step<V * kWidth>();
#pragma GCC unroll 4
        for (int j = 0; j < V; ++j) {
            const v4d xv = load(x + r * stride + j * kWidth);
            const v4d gv = Backward ? load(g + r * stride + j * kWidth) : v4d{};
            acc.template add<Backward>(j, xv, gv, k[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < V; ++j) acc.template store<Backward>(j, t, at(j));
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

} // namespace
} // namespace bnorm::kernels
