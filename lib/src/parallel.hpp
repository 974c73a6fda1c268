// A minimal static-partition parallel loop. Work items are split into contiguous ranges
// by index only, and every item writes its own output slot, so results never depend on
// the number of threads. Internal to the library.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace bnorm::detail {

inline int resolve_threads(int requested) {
    if (requested > 0) return requested;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int>(hw);
}

/// Calls body(begin, end) on disjoint ranges covering [0, n), on up to `threads` threads
/// (the calling thread takes the first range). Rethrows the first exception.
template <class F> void parallel_for(std::int64_t n, int threads, F&& body) {
    const std::int64_t t = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, n));
    if (t == 1) {
        if (n > 0) body(std::int64_t{0}, n);
        return;
    }
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(t));
    auto run = [&](std::int64_t k) {
        try {
            body(n * k / t, n * (k + 1) / t);
        } catch (...) {
            errors[static_cast<std::size_t>(k)] = std::current_exception();
        }
    };
    std::vector<std::thread> pool;
    for (std::int64_t k = 1; k < t; ++k) pool.emplace_back(run, k);
    run(0);
    for (auto& th : pool) th.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

} // namespace bnorm::detail
