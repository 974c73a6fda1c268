// Pass B's stores: when outputs are streamed past the caches (non-temporal stores), and
// the loop that writes an output array a vector at a time.
#pragma once

#include "channel_groups.hpp"
#include "lanes.hpp"
#include "prefetch.hpp"
#include "simd.hpp"
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

// ---- pass B kernels ---------------------------------------------------------------------------
//
// Outputs from detail::stream_threshold() bytes are written with non-temporal stores:
// they would only evict the inputs from the caches, and a normal store also reads each
// line first.
/// How far ahead of a vector pass B prefetches its inputs (write_each), as pass A's run
/// kernels do: a chunk of kRunTile.terms steps of eight float64.
constexpr std::size_t kReadAhead = 2048;

/// Streamed stores slow to a crawl where the output sits a little ahead of an input,
/// modulo 4 KiB: when out − in is 16 to about 160 bytes (mod 4096), each load seems to
/// wait for the streamed store to the line it aliases (same address bits 0-11) to drain.
/// Within kAliasBytes, pass B stores in the ordinary way, which is not hurt.
constexpr std::uintptr_t kAliasBytes = 160;

/// Whether streaming to `out` stays clear of that: every input is at 0 or beyond
/// kAliasBytes behind it, modulo 4 KiB.
template <class T, class... In> bool stream_clear_of(const T* out, const In*... in) {
    auto behind = [&](const void* p) {
        return (reinterpret_cast<std::uintptr_t>(out) - reinterpret_cast<std::uintptr_t>(p)) % 4096;
    };
    return ((in == nullptr || behind(in) == 0 || behind(in) > kAliasBytes) && ...);
}

/// Calls f(std::true_type) when the `bytes` of output are to be streamed (at least
/// `from`, and `clear`: stream_clear_of), else f(std::false_type), so that kernels can
/// take the choice as a template argument.
template <class F> void with_streaming(std::int64_t bytes, std::int64_t from, bool clear, F&& f) {
    if (bytes >= from && clear) f(std::true_type{});
    else f(std::false_type{});
}
/// The same from detail::stream_threshold().
template <class F> void with_streaming(std::int64_t bytes, bool clear, F&& f) {
    with_streaming(bytes, detail::stream_threshold(), clear, std::forward<F>(f));
}

/// Whether eight-lane vectors from these arrays stay within cache lines: every pointer on
/// a multiple of eight values (32 bytes of float, 64 of double).
template <class T, class... Ts> bool eight_aligned(const T* p, const Ts*... ps) {
    return ((reinterpret_cast<std::uintptr_t>(p) | ... | reinterpret_cast<std::uintptr_t>(ps)) % (8 * sizeof(T))) == 0;
}

/// out[0, lanes of v) = v (a v4d or v8d): streamed past the caches when Stream, else an
/// ordinary store.
template <bool Stream, class T, class V> inline void put_lanes(T* out, V v) {
    if constexpr (Stream) detail::simd::stream(out, v);
    else detail::simd::store(out, v);
}

/// out[i..] = f(D{}, i) for i in [0, n), f giving the values of lanes<D>(…, i): eight
/// lanes (v8d) where the build has AVX-512 and `wide` says the arrays are eight_aligned,
/// then four (v4d), then one (double). f does the same operations on each lane of any D,
/// so the bits do not depend on the width. When Stream, the vectors are streamed from
/// where `out` is aligned for four lanes (16 bytes of float, 32 of double; eight lanes are
/// streamed as two fours), the lanes before that stored one by one.
///
/// Eight lanes are for cores whose 512-bit FMA units do eight lanes in about the time of
/// four; they are faster on aligned arrays and slower on arrays 16 bytes past a line, as
/// malloc gives (eight-lane loads that cross lines), hence `wide`. Aligning the output for
/// eight lanes is worse: rows begun by ordinary stores into the lines being streamed.
///
/// `ahead`: arrays that f reads at the same indices, prefetched Ahead bytes (kReadAhead
/// unless the kernel says otherwise) ahead of each vector: the hardware's prefetchers alone
/// left pass B waiting on memory.
template <bool Stream, std::size_t Ahead = kReadAhead, class T, class F, class... In>
inline void write_each(T* __restrict out, std::int64_t n, [[maybe_unused]] bool wide, F&& f, const In*... ahead) {
    using namespace detail::simd;
    const auto prefetch = [&]([[maybe_unused]] std::int64_t i) {
        (prefetch_l1(ahead, i + std::int64_t(Ahead / sizeof(In))), ...);
    };
    std::int64_t i = 0;
    if constexpr (Stream)
        for (; i < n && reinterpret_cast<std::uintptr_t>(out + i) % (kWidth * sizeof(T)) != 0; ++i)
            out[i] = T(f(0.0, i));
#if defined(__AVX512F__)
    for (; wide && i + 8 <= n; i += 8) {
        prefetch(i);
        put_lanes<Stream>(out + i, f(v8d{}, i));
    }
#endif
    for (; i + kWidth <= n; i += kWidth) {
        prefetch(i);
        put_lanes<Stream>(out + i, f(v4d{}, i));
    }
    for (; i < n; ++i) out[i] = T(f(0.0, i));
}

/// out[i] = vec(i) (a v4d of lanes i..i+3) or one(i) (a double for one i), four lanes at
/// most: write_each for kernels written apart for a vector and for one value.
template <bool Stream, std::size_t Ahead = kReadAhead, class T, class FV, class FS, class... In>
inline void write_lanes(T* __restrict out, std::int64_t n, FV&& vec, FS&& one, const In*... ahead) {
    write_each<Stream, Ahead>(
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

} // namespace
} // namespace bnorm::kernels
