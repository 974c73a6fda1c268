// Pass A's biased sums (float64 data, and float32's second stage): exact Fast2Sum steps
// against a power-of-two bias, uncentred or centred on a reference per channel.
#pragma once

#include "lanes.hpp"
#include "prefetch.hpp"
#include "stats/looks.hpp"
#include "stats/summation.hpp"
#include "stats/sums.hpp"
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

// ---- biased sums (float64 data) ------------------------------------------------------------
//
// The error-free sums (exact_sums.hpp) cost about 50 operations per element for backward, which
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
// log2(1 + μ²/σ²) bits to cancellation. The certificates (certificates.hpp) check, channel by channel,
// that what is left is enough for float64 outputs, and the channels where it is not
// (|μ| ≫ σ, dx a tiny fraction of its terms) are summed again with the error-free kernels.


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
/// The same bits, one operation fewer.
template <class D> inline void add_biased_exact_product(D& a, D& e, D p, D q) {
    const D s = fused(p, q, a);
    e += fused(p, q, minus<true>(a, s));
    a = s;
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
/// chains; interleaved, each fills the other's waits. (Looking at the next tile instead,
/// 16 rows further down, is slower.) flatten: with BiasedTile::fold called out of line,
/// GCC kept the sums on the stack.
///
/// Copy (row strides that crowd L1's sets, crowds_l1_sets): the look copies each row of
/// the group it reads into a buffer, and the sums read the buffer, where the strided lines
/// would have been evicted in between. The same operations on the same values, so the
/// same bits.
///
/// G = 2 (float32, one vector of channels; `chunks` even): the look is at two chunks at
/// once, 16 floats (a line) where one chunk's is 8, done while the first of the two chunks
/// before them is summed; FloatLook<D, 2>::chunk gives each chunk its half, the same
/// values as its own look. That halves the look's instructions, which were a fifth of the
/// loop's.
template <class D, bool Backward, int V, bool Centred, int G, bool Copy, class T>
[[gnu::noinline, gnu::flatten]] void add_chunks_biased(const T* __restrict x, const T* __restrict g,
                                                      std::int64_t stride, std::int64_t rows, std::size_t c,
                                                      std::size_t chunks, Sums& t, TilePrefetch<T>& prefetch_of_tile) {
    static_assert(G == 1 || (std::is_same_v<T, float> && !Centred), "looks at two chunks at once: float32's");
    using Look = std::conditional_t<std::is_same_v<T, float>, FloatLook<D, G>, DoubleLook<D>>;
    using LookX = std::conditional_t<Centred, CentredLook<D>, Look>;
    constexpr int N = kRowTile.terms, L = kLanesOf<D>, Lanes = V * L;
    auto at = [&](int j) { return c + std::size_t(j * L); };
    constexpr int W = G * Lanes; // a group's values in one row
    LookX lx[V]; // the look at the group of G chunks from c
    Look lg[V];
    // Copy: each row of a group as the look reads it, into slot `slot` (the next group's:
    // the other one), for the sums to read there (in_group)
    alignas(64) T xcopy[Copy ? 2 : 1][Copy ? N : 1][W], gcopy[Copy && Backward ? 2 : 1][Copy ? N : 1][W];
    int slot = 0;
    auto look = [&](LookX (&ax)[V], Look (&ag)[V], std::int64_t r, std::size_t from, int to) {
        const T* xr = x + r * stride + from;
        const T* gr = Backward ? g + r * stride + from : nullptr;
        if constexpr (Copy) {
            xr = static_cast<const T*>(std::memcpy(xcopy[to][r], xr, sizeof xcopy[to][r]));
            if constexpr (Backward) gr = static_cast<const T*>(std::memcpy(gcopy[to][r], gr, sizeof gcopy[to][r]));
        }
#pragma GCC unroll 4
        for (int j = 0; j < V; ++j) {
            ax[j].add(xr + j * L);
            if constexpr (Backward) ag[j].add(gr + j * L);
        }
    };
    TilePrefetch<T> prefetch = prefetch_of_tile; // (in registers)
    for (std::int64_t r = 0; r < rows; ++r) prefetch.template step<G * Lanes>(), look(lx, lg, r, c, slot);
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
                    if constexpr (Looks) look(nx, ng, r, c + G * Lanes, slot ^ 1);
#pragma GCC unroll 4
                    for (int j = 0; j < V; ++j) {
                        const std::size_t in_group = std::size_t(P * Lanes + j * L);
                        const D v = Copy ? lanes<D>(xcopy[slot][r], in_group) : lanes<D>(x + r * stride, at(j));
                        const D dv = !Backward ? D{}
                                     : Copy    ? lanes<D>(gcopy[slot][r], in_group)
                                               : lanes<D>(g + r * stride, at(j));
                        tile[j].template add_as<Exact>(Centred ? D(v - K[j]) : v, dv);
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
        slot ^= 1;
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
    const bool copy = crowds_l1_sets(stride * std::int64_t(sizeof(T)), N, Backward ? 2 : 1);
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
                if (n >= 2) add_chunks_biased<D, Backward, V, Centred, 2, false>(xt, gt, stride, rows, c, n / 2 * 2, t, prefetch);
                c += n / 2 * 2 * Lanes, n %= 2;
            }
            if (n > 0) {
                if (copy) add_chunks_biased<D, Backward, V, Centred, 1, true>(xt, gt, stride, rows, c, n, t, prefetch);
                else add_chunks_biased<D, Backward, V, Centred, 1, false>(xt, gt, stride, rows, c, n, t, prefetch);
            }
            c += n * Lanes;
        };
#if defined(__AVX512F__)
        // AVX-512, forward: two vectors of eight channels (simd::v8d). Backward: one vector
        // of eight, the lanes of v4d's two.
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
/// on memory with nothing else to do.
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
        // ta and tb below, folded in the same order (the same bits).
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

} // namespace
} // namespace bnorm::kernels
