// Pass A's plain sums (float32 data): double accumulators folded every kPlainRun terms
// into compensated block sums, their error bounded by the certificates.
#pragma once

#include "lanes.hpp"
#include "prefetch.hpp"
#include "stats/summation.hpp"
#include "stats/sums.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

// ---- plain sums (float32 data) ------------------------------------------------------------
//
// float32 values are exact in double, and so (nearly always) are x − K, (x − K)² and
// dy·(x − K): the only rounding is in the additions. The plain kernels add at most
// kPlainRun terms into one double accumulator, then fold it into the compensated sums of
// the block, so a plain sum is off by at most γ(kPlainRun + 2)·Σ|terms| (Higham, 2002,
// §4.2). The certificates (certificates.hpp) turn that into a bound on every output, and
// channels whose bound is not small enough are summed again with other kernels.

/// Stands for a sum of dy in forward, and takes no room.
template <int> struct NoSum {};

/// The plain sums of one set of lanes (double, v4d or v8d): p1 = Σ(x − K), p2 = Σ(x − K)²,
/// and for backward q1 = Σdy, q2 = Σdy·(x − K), q3 = Σdy². Forward keeps no room for the
/// sums of dy, and there are no default zeros: the chunk kernel loads these, and a larger
/// stack frame made GCC stop inlining it into the tile kernel.
template <class D, bool Backward> struct PlainAcc {
    D p1, p2;
    [[no_unique_address]] std::conditional_t<Backward, D, NoSum<1>> q1;
    [[no_unique_address]] std::conditional_t<Backward, D, NoSum<2>> q2;
    [[no_unique_address]] std::conditional_t<Backward, D, NoSum<3>> q3;

    /// Adds d = x − K and g = dy, always inlined as two_sum is: the kernels keep these
    /// accumulators in registers.
    [[gnu::always_inline]] inline void add(D d, D g) {
        using detail::simd::fma, std::fma;
        p1 += d;
        p2 = fma(d, d, p2);
        if constexpr (Backward) {
            q1 += g;
            q2 = fma(g, d, q2);
            q3 = fma(g, g, q3);
        }
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
    constexpr int L = kLanesOf<D>;
    auto at = [](int j) { return std::size_t(j * L); };
    D k[V];
    PlainAcc<D, Backward> a[V];
#pragma GCC unroll 4
    for (int j = 0; j < V; ++j) {
        k[j] = lanes<D>(K, at(j)), a[j].p1 = lanes<D>(p1, at(j)), a[j].p2 = lanes<D>(p2, at(j));
        if constexpr (Backward)
            a[j].q1 = lanes<D>(q1, at(j)), a[j].q2 = lanes<D>(q2, at(j)), a[j].q3 = lanes<D>(q3, at(j));
    }
    for (std::int64_t r = 0; r < rows; ++r) {
        prefetch.template step<V * L>();
#pragma GCC unroll 4
        for (int j = 0; j < V; ++j)
            a[j].add(lanes<D>(x + r * C, at(j)) - k[j], Backward ? lanes<D>(g + r * C, at(j)) : D{});
    }
#pragma GCC unroll 4
    for (int j = 0; j < V; ++j) {
        put(p1, at(j), a[j].p1), put(p2, at(j), a[j].p2);
        if constexpr (Backward) put(q1, at(j), a[j].q1), put(q2, at(j), a[j].q2), put(q3, at(j), a[j].q3);
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
    // instructions of v4d for the same arithmetic. Backward keeps v4d, for the tiny tensors.
    if constexpr (!Backward)
        while (c + 32 <= C) chunk(v8d{}, std::integral_constant<int, 4>{});
#endif
    // V·(2 or 5) accumulators and V references in registers. Forward stays at 4 with 32
    // registers: 8 spill.
    constexpr int V = Backward ? (kRegisters == 32 ? 4 : 2) : 4;
    while (c + V * kWidth <= C) chunk(v4d{}, std::integral_constant<int, V>{});
    while (c + kWidth <= C) chunk(v4d{}, std::integral_constant<int, 1>{});
    // The same operations, one lane, written out: with a PlainAcc here GCC compiled the
    // whole tile kernel differently.
    for (; c < C; ++c)
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

/// Adds the values v[0, len) (and dy g) of channel c to its sums with plain kernels, in
/// V·kWidth lanes (value i to lane i mod V·kWidth), folded every kPlainRun values per
/// lane; the next chunk prefetched meanwhile, as in add_run_biased. Sixteen lanes: in
/// eight, each sum is a single chain that waits on the adds' latency (Zen 5,
/// performance.md). Backward's five sums in sixteen lanes do not fit in sixteen
/// registers, so without AVX-512 it adds the chunk's lanes 0–7, then 8–15: each lane
/// sees its values in the same order, and the sums have the same bits.
template <class T, bool Backward> void add_run_plain(const T* v, const T* g, std::int64_t len, std::size_t c, Sums& t) {
    using namespace detail::simd;
    using Acc = PlainAcc<v4d, Backward>;
    constexpr int V = 4; // vectors of kWidth lanes
    if (t.n[c] == 0) t.K[c] = double(v[0]);
    const v4d K = splat(t.K[c]);
    constexpr std::int64_t step = V * kWidth, chunk = kPlainRun * step;
    const auto add4 = [&](Acc& acc, std::int64_t at) { acc.add(load(v + at) - K, Backward ? load(g + at) : v4d{}); };
    // the totals of a[], the chunk's lanes as V vectors of four
    const auto totals = [](const Acc* a) {
        const auto total = [&](v4d Acc::*m) { return sum_lanes((a[0].*m + a[2].*m) + (a[1].*m + a[3].*m)); };
        PlainAcc<double, Backward> p{total(&Acc::p1), total(&Acc::p2), {}, {}, {}};
        if constexpr (Backward) p.q1 = total(&Acc::q1), p.q2 = total(&Acc::q2), p.q3 = total(&Acc::q3);
        return p;
    };
    std::int64_t i = 0;
    while (i < len) {
        const std::int64_t end = std::min(len, i + chunk);
        PlainAcc<double, Backward> p;
#if defined(__AVX512F__)
        // AVX-512: the step's lanes as V/2 v8d, whose halves are a[0..V) (the same bits),
        // half the instructions
        const v8d K8 = detail::broadcast<v8d>(t.K[c]);
        PlainAcc<v8d, Backward> w[V / 2]{};
        for (; i + step <= end; i += step) {
            prefetch_l1(v, i + chunk);
            if constexpr (Backward) prefetch_l1(g, i + chunk);
#pragma GCC unroll 2
            for (int j = 0; j < V / 2; ++j) {
                const std::size_t at = std::size_t(i + 8 * j);
                w[j].add(lanes<v8d>(v, at) - K8, Backward ? lanes<v8d>(g, at) : v8d{});
            }
        }
        const auto halves = [](v8d w, v4d& lo, v4d& hi) {
            lo = v4d{w[0], w[1], w[2], w[3]}, hi = v4d{w[4], w[5], w[6], w[7]};
        };
        if (end - i < kWidth) { // no vector of four left: totals() of w's halves, without a[]
            const auto total = [&](v8d PlainAcc<v8d, Backward>::*m) {
                v4d lo, hi;
                halves(w[0].*m + w[1].*m, lo, hi); // (a[0] + a[2]), (a[1] + a[3])
                return sum_lanes(lo + hi);
            };
            p = {total(&PlainAcc<v8d, Backward>::p1), total(&PlainAcc<v8d, Backward>::p2), {}, {}, {}};
            if constexpr (Backward)
                p.q1 = total(&PlainAcc<v8d, Backward>::q1), p.q2 = total(&PlainAcc<v8d, Backward>::q2),
                p.q3 = total(&PlainAcc<v8d, Backward>::q3);
        } else {
            Acc a[V];
            for (int j = 0; j < V / 2; ++j) {
                Acc &lo = a[2 * j], &hi = a[2 * j + 1];
                halves(w[j].p1, lo.p1, hi.p1), halves(w[j].p2, lo.p2, hi.p2);
                if constexpr (Backward)
                    halves(w[j].q1, lo.q1, hi.q1), halves(w[j].q2, lo.q2, hi.q2), halves(w[j].q3, lo.q3, hi.q3);
            }
            // the chunk's last whole vectors of four into lanes 0.. in turn, so that at most
            // three values are left to add one by one (kPlainGamma's margin)
            for (int j = 0; i + kWidth <= end; i += kWidth, ++j) add4(a[j], i);
            p = totals(a);
        }
#else
        Acc a[V]{}; // lanes [j·kWidth, (j + 1)·kWidth) of the step
        if constexpr (Backward) { // lanes 0–7 over the chunk's whole steps, then lanes 8–15
            const std::int64_t whole = i + (end - i) / step * step;
            for (int h = 0; h < V; h += 2) {
                Acc lo = a[h], hi = a[h + 1];
                for (std::int64_t k = i; k < whole; k += step) {
                    if (h == 0) prefetch_l1(v, k + chunk), prefetch_l1(g, k + chunk);
                    add4(lo, k + h * kWidth), add4(hi, k + (h + 1) * kWidth);
                }
                a[h] = lo, a[h + 1] = hi;
            }
            i = whole;
        }
        for (; i + step <= end; i += step) {
            prefetch_l1(v, i + chunk);
            if constexpr (Backward) prefetch_l1(g, i + chunk);
#pragma GCC unroll 4
            for (int j = 0; j < V; ++j) add4(a[j], i + j * kWidth);
        }
        // the chunk's last whole vectors of four into lanes 0.. in turn, so that at most
        // three values are left to add one by one (kPlainGamma's margin)
        for (int j = 0; i + kWidth <= end; i += kWidth, ++j) add4(a[j], i);
        p = totals(a);
#endif
        for (; i < end; ++i) // the tail, fewer than kWidth values
            p.add(double(v[i]) - t.K[c], Backward ? double(g[i]) : 0.0);
        fold(t.s1[c], t.s1_err[c], p.p1);
        fold(t.s2[c], t.s2_err[c], p.p2);
        if constexpr (Backward) {
            fold(t.b1[c], t.b1_err[c], p.q1);
            fold(t.b2[c], t.b2_err[c], p.q2);
            fold(t.b3[c], t.b3_err[c], p.q3);
        }
    }
    t.n[c] += double(len);
}

} // namespace
} // namespace bnorm::kernels
