// The vocabulary of the kernels over channels: per-channel arrays on cache lines, and a
// channel or four (v4d) or eight (v8d) channels as the lanes of one value D.
#pragma once

#include "ddouble.hpp"
#include "simd.hpp"
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

using detail::dd;
using detail::dd_of;
using detail::fused;

// ---- per-channel arrays on cache lines ----------------------------------------------------
//
// The kernels read and write per-channel arrays (sums, coefficients) as vectors of four
// doubles. std::vector's storage is only 16-byte aligned, so half of those vectors would
// straddle two cache lines, each access then costing two. So every such array starts on a
// line: `count` arrays of C doubles, padded(C) apart, from the first line of a vector's
// storage.

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

/// Lane-wise max and min (std::max's and std::min's choice: the first when either is NaN).
template <class D> inline D larger(D a, D b) { return a < b ? b : a; }
template <class D> inline D smaller(D a, D b) { return b < a ? b : a; }

inline double magnitude(double a) { return std::abs(a); }
inline detail::simd::v4d magnitude(detail::simd::v4d a) { return detail::simd::abs(a); }
inline detail::simd::v8d magnitude(detail::simd::v8d a) { return detail::simd::abs(a); }

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
#if defined(__AVX512DQ__) // the larger magnitude with its sign cleared, in one vrangepd where
    // vandpd and vmaxpd were two on the sums' critical ports. A quiet NaN is not taken, as
    // below; a signalling one is, as a quiet NaN: its channel's sums are NaN either way.
    return _mm512_range_pd(m, v, 0b1011);
#elif defined(__AVX512F__) // a > m ? a : m in one vmaxpd (GCC 12 makes a compare and a masked
    // move of it, a longer chain; and warns about _mm512_max_pd's undefined pass-through)
    return _mm512_maskz_max_pd(0xff, magnitude(v), m);
#else
    const detail::simd::v8d a = magnitude(v);
    return a > m ? a : m;
#endif
}

/// min(m, |v|), lane by lane (NaN not taken).
inline double min_magnitude(double m, double v) {
    const double a = magnitude(v);
    return a < m ? a : m;
}
inline detail::simd::v4d min_magnitude(detail::simd::v4d m, detail::simd::v4d v) {
#if defined(__AVX__)
    return _mm256_min_pd(magnitude(v), m); // a < m ? a : m, lane by lane
#else
    const detail::simd::v4d a = magnitude(v);
    return a < m ? a : m;
#endif
}
inline detail::simd::v8d min_magnitude(detail::simd::v8d m, detail::simd::v8d v) {
#if defined(__AVX512DQ__) // one vrangepd, as max_magnitude
    return _mm512_range_pd(m, v, 0b1010);
#elif defined(__AVX512F__) // one vminpd, as max_magnitude
    return _mm512_maskz_min_pd(0xff, magnitude(v), m);
#else
    const detail::simd::v8d a = magnitude(v);
    return a < m ? a : m;
#endif
}

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

/// p + offset, or null for null p.
template <class P> P shifted(P p, std::int64_t offset) { return p ? p + offset : nullptr; }

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

} // namespace
} // namespace bnorm::kernels
