// Pass B's threading: how many threads a call takes, and the split of outer rows into
// runs that the threads take as they come.
#pragma once

#include "bnorm/layout.hpp"
#include "parallel.hpp"
#include "simd.hpp"
#include <algorithm>
#include <cassert>
#include <cstdint>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

/// Pass B's unit of parallel work, in values of T: 64 Ki float64 values; 1 Mi float32
/// ones, where chunks of 64 Ki took 1.02 to 1.14 of the time of inference and forward at
/// two threads (float64 was no faster with larger chunks: Zen 5, performance.md).
template <class T> constexpr std::int64_t kPassBChunk = sizeof(T) == 4 ? std::int64_t{1} << 20 : 64 * 1024;
constexpr std::int64_t kSerialBelow = 1 << 16;       // elements: smaller tensors use 1 thread

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
/// of channels (vectorized across channels), a chunk of about kPassBChunk<T> values in one
/// call; else one channel's `inner` values (rows == 1). The threads take the chunks as
/// they come (parallel_chunks): an even split waits for the slower core. Every output
/// element is computed alone, so the split between threads cannot change a bit. `whole`: the channels between one
/// row and the next (a group of channels, inner > 1, as in Blocks).
template <class T, class F>
void for_rows_parallel(const Layout& l, std::int64_t whole, std::int64_t o0, std::int64_t o1, int threads, F&& run) {
    threads = threads_for_rows(l, o0, o1, threads);
    assert(whole == l.channels || l.inner > 1);
    if (l.inner == 1) {
        const std::int64_t grain = threads > 1 ? kPassBChunk<T> / l.channels : 0; // (no division for one thread)
        detail::parallel_chunks(o1 - o0, grain, threads, [&](std::int64_t b, std::int64_t e) {
            run((o0 + b) * l.channels, std::int64_t{0}, l.channels, std::int64_t{1}, e - b);
            detail::simd::stream_fence(); // the kernels may have used non-temporal stores
        });
    } else {
        const std::int64_t r0 = o0 * l.channels, grain = std::max<std::int64_t>(1, kPassBChunk<T> / l.inner);
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

} // namespace
} // namespace bnorm::kernels
