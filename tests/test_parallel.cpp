// The library's parallel loops (lib/src/parallel.hpp) and the pool they run on: every
// item exactly once, for any thread count and grain, from nested calls and from several
// threads of a program at once, exceptions carried back to the caller.
#include "bnorm/detail/kept.hpp"
#include "../lib/src/parallel.hpp"
#include "bnorm/batchnorm.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <vector>

using bnorm::detail::parallel_chunks;
using bnorm::detail::parallel_for;

namespace {

/// How many times each item of [0, n) was visited by one loop; empty if it was given a
/// range outside [0, n).
template <class Loop> std::vector<int> visits(std::int64_t n, Loop&& loop) {
    std::vector<std::atomic<int>> seen(static_cast<std::size_t>(n));
    std::atomic<bool> outside{false};
    loop([&](std::int64_t b, std::int64_t e) {
        if (b < 0 || e < b || e > n) return outside.store(true);
        for (std::int64_t i = b; i < e; ++i) seen[static_cast<std::size_t>(i)].fetch_add(1);
    });
    std::vector<int> out;
    if (outside.load()) return out;
    for (auto& s : seen) out.push_back(s.load());
    return out;
}

bool each_once(const std::vector<int>& v, std::int64_t n) {
    if (std::int64_t(v.size()) != n) return false;
    for (int k : v)
        if (k != 1) return false;
    return true;
}

} // namespace

TEST_CASE("parallel_for and parallel_chunks: every item once, for any threads and grain") {
    for (std::int64_t n : {0, 1, 2, 7, 64, 1000, 4099})
        for (int threads : {1, 2, 3, 5, 8})
            for (std::int64_t grain : {0, 1, 3, 64, 5000}) {
                CAPTURE(n);
                CAPTURE(threads);
                CAPTURE(grain);
                CHECK(each_once(visits(n, [&](auto body) { parallel_chunks(n, grain, threads, body); }), n));
                if (grain == 0)
                    CHECK(each_once(visits(n, [&](auto body) { parallel_for(n, threads, body); }), n));
            }
}

TEST_CASE("parallel loops: the work runs on several threads") {
    // Each of 3 chunks waits (bounded) until all 3 have started: only 3 threads at once
    // get every chunk past it.
    std::atomic<int> started{0}, met{0};
    parallel_chunks(3, 1, 3, [&](std::int64_t, std::int64_t) {
        started.fetch_add(1);
        for (int i = 0; i < 2000000 && started.load() < 3; ++i) std::this_thread::yield();
        if (started.load() == 3) met.fetch_add(1);
    });
    CHECK(met.load() == 3);
}

TEST_CASE("parallel loops: nested, and from several threads of a program at once") {
    // Inner loops run while the pool is taken by the outer one, or by the other caller:
    // they take threads of their own, and still visit every item once.
    auto nested = [] {
        std::atomic<int> bad{0};
        parallel_for(6, 3, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t i = b; i < e; ++i)
                if (!each_once(visits(500, [&](auto body) { parallel_chunks(500, 7, 2, body); }), 500)) bad.fetch_add(1);
        });
        return bad.load();
    };
    CHECK(nested() == 0);
    std::atomic<int> bad{0};
    std::vector<std::thread> callers;
    for (int k = 0; k < 3; ++k)
        callers.emplace_back([&] {
            for (int rep = 0; rep < 50; ++rep) {
                bad.fetch_add(nested());
                if (!each_once(visits(2000, [&](auto body) { parallel_chunks(2000, 10, 2, body); }), 2000)) bad.fetch_add(1);
            }
        });
    for (auto& t : callers) t.join();
    CHECK(bad.load() == 0);
}

TEST_CASE("parallel loops: an exception in any thread reaches the caller, and the pool goes on") {
    for (int threads : {2, 3}) {
        for (std::int64_t throwing : {0, 1, 2}) {
            CAPTURE(threads);
            CAPTURE(throwing);
            CHECK_THROWS_WITH_AS(parallel_for(3, threads,
                                              [&](std::int64_t b, std::int64_t e) {
                                                  for (std::int64_t i = b; i < e; ++i)
                                                      if (i == throwing) throw std::runtime_error("item failed");
                                              }),
                                 "item failed", std::runtime_error);
            CHECK(each_once(visits(100, [&](auto body) { parallel_chunks(100, 1, threads, body); }), 100));
        }
    }
}

TEST_CASE("forward and backward called from several threads of a program at once: the same bits") {
    // 4096 x 80 values (above the one-thread size): one caller gets the pool, the others
    // threads of their own; every result must be the bits of a lone one-thread call.
    const bnorm::Layout l{4096, 80, 1};
    std::vector<float> x(std::size_t(l.size())), dy(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
        x[i] = float(std::sin(0.37 * double(i)) * 3 + 1), dy[i] = float(std::cos(0.11 * double(i)));
    std::vector<float> y1(x.size()), dx1(x.size()), dg1(80), db1(80);
    bnorm::forward<float>(x.data(), nullptr, nullptr, l, 1e-5, y1.data(), nullptr, nullptr, 1);
    bnorm::backward<float>(x.data(), nullptr, dy.data(), l, 1e-5, dx1.data(), dg1.data(), db1.data(), 1);
    std::atomic<int> differ{0};
    std::vector<std::thread> callers;
    for (int k = 0; k < 3; ++k)
        callers.emplace_back([&] {
            std::vector<float> y(x.size()), dx(x.size()), dg(80), db(80);
            for (int rep = 0; rep < 5; ++rep) {
                bnorm::forward<float>(x.data(), nullptr, nullptr, l, 1e-5, y.data(), nullptr, nullptr, 2);
                bnorm::backward<float>(x.data(), nullptr, dy.data(), l, 1e-5, dx.data(), dg.data(), db.data(), 2);
                if (y != y1 || dx != dx1 || dg != dg1 || db != db1) differ.fetch_add(1);
            }
        });
    for (auto& t : callers) t.join();
    CHECK(differ.load() == 0);
}

TEST_CASE("kept scratch: a freed block serves the next request that fits on its thread, and only there") {
    using bnorm::detail::Kept;
    using Doubles = std::vector<double, Kept<double>>;
    bnorm::detail::KeptBlocks::of_this_thread()->release(); // from the tests before
    auto* moved = new Doubles(300, 4.0); // freed on another thread below
    const double* first = nullptr;
    {
        Doubles a(300, 1.0);
        first = a.data();
    }
    // Another thread has its own blocks; a block allocated here may be freed there.
    const double* there = nullptr;
    std::thread t([&] {
        Doubles mine(300);
        there = mine.data();
        delete moved; // kept by that thread, freed when it exits
    });
    t.join();
    CHECK(there != first);
    {
        Doubles smaller(100, 2.0); // fits in the block kept here
        CHECK(smaller.data() == first);
        CHECK(smaller[99] == 2.0);
        Doubles other(100, 3.0); // that block is taken: a new one
        CHECK(other.data() != first);
    }
}

TEST_CASE("kept scratch: storage freed after the thread's kept blocks are gone is freed, not kept") {
    // A vector destroyed after its thread's kept blocks (here a thread_local made before
    // them; in a program, a static pass) must free its storage itself: kept in the
    // destroyed blocks, it would leak, which LeakSanitizer reports in the sanitizer stage
    // of scripts/test.sh.
    std::thread t([] {
        struct Holder {
            std::vector<double, bnorm::detail::Kept<double>> v;
        };
        thread_local Holder holder; // made before the kept blocks: destroyed after them
        holder.v.assign(100, 1.0);
        CHECK(bnorm::detail::KeptBlocks::of_this_thread() != nullptr);
    });
    t.join();
}
