// Minimal parallel loops, on a pool of threads kept for the process (parallel.cpp). Work
// items are split by index only, and every item writes its own output slot, so results
// never depend on the number of threads, nor on which thread ran an item. Internal to
// the library.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <system_error>
#include <thread>
#include <vector>

namespace bnorm::detail {

inline int resolve_threads(int requested) {
    if (requested > 0) return requested;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int>(hw);
}

/// Runs job(ctx, k) for k in [1, t) on the library's pool of threads and job(ctx, 0) on
/// the calling thread, and returns when all have; false, having run nothing, when the
/// pool is taken (a nested call, or another thread of the program). parallel.cpp.
bool run_on_pool(std::int64_t t, void (*job)(void*, std::int64_t), void* ctx);

/// Calls worker(k) for k in [0, t) on t threads (the calling thread takes k = 0): the
/// pool's, or new ones when it is taken. Rethrows the first exception, in the order of k.
template <class W> void on_threads(std::int64_t t, W&& worker) {
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(t));
    auto run = [&](std::int64_t k) {
        try {
            worker(k);
        } catch (...) {
            errors[static_cast<std::size_t>(k)] = std::current_exception();
        }
    };
    using Run = decltype(run);
    if (!run_on_pool(t, [](void* r, std::int64_t k) { (*static_cast<Run*>(r))(k); }, &run)) {
        std::vector<std::thread> spawned;
        std::int64_t k = 1;
        try {
            for (; k < t; ++k) spawned.emplace_back(run, k);
        } catch (const std::system_error&) { // no more threads: this one runs the rest
        }
        run(0);
        for (; k < t; ++k) run(k);
        for (auto& th : spawned) th.join();
    }
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

/// Calls body(begin, end) on disjoint ranges covering [0, n), one per thread, on up to
/// `threads` threads (the calling thread takes the first range). Rethrows the first
/// exception.
template <class F> void parallel_for(std::int64_t n, int threads, F&& body) {
    const std::int64_t t = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, n));
    if (t == 1) {
        if (n > 0) body(std::int64_t{0}, n);
        return;
    }
    on_threads(t, [&](std::int64_t k) { body(n * k / t, n * (k + 1) / t); });
}

/// Calls body(begin, end) on the chunks [i·grain, (i + 1)·grain) ∩ [0, n), on up to
/// `threads` threads, each taking the next chunk left until none is: a thread on a busier
/// core takes fewer (cores may read memory at different speeds, and an even split waits for
/// the slower). On one thread, body(0, n) once.
/// Rethrows the first exception; a thread stops taking chunks after its own.
template <class F> void parallel_chunks(std::int64_t n, std::int64_t grain, int threads, F&& body) {
    grain = std::max<std::int64_t>(1, grain);
    if (threads <= 1 || n <= grain) { // first: no division on the way of small calls
        if (n > 0) body(std::int64_t{0}, n);
        return;
    }
    const std::int64_t chunks = (n + grain - 1) / grain;
    const std::int64_t t = std::min<std::int64_t>(threads, chunks);
    std::atomic<std::int64_t> next{0};
    on_threads(t, [&](std::int64_t) {
        for (std::int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < chunks;)
            body(i * grain, std::min(n, (i + 1) * grain));
    });
}

} // namespace bnorm::detail
