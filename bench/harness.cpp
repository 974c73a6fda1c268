#include "harness.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <new>
#include <random>
#include <thread>
#include <vector>

namespace bench {

// Large buffers are followed by 2 MiB that nothing uses. Back to back, two power-of-two
// buffers land 2^k + 4 KiB apart, and on this project's Zen 4 machines a kernel that reads
// two arrays that far apart side by side runs slower: float64 backward pass A, 65536 x 256,
// one thread, 25 ms instead of 19 (likely aliasing in the L1 cache's way predictor, which
// hashes address bits above 4 KiB). That is the placement, not the kernel: the gap gives
// every implementation timed on these buffers the same ordinary placement, as bnorm's own
// file mappings have (lib/src/files.cpp).
constexpr std::size_t kGapFrom = std::size_t(2) << 20, kGap = std::size_t(2) << 20;

void* allocate_aligned(std::size_t bytes) {
    std::size_t rounded = (std::max<std::size_t>(bytes, 1) + 63) / 64 * 64;
    if (rounded >= kGapFrom) rounded += kGap;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    return p;
}
void free_aligned(void* p) { std::free(p); }

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

long page_faults() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt + u.ru_majflt;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

} // namespace

Timing measure(const std::function<void()>& call, const RepPolicy& policy) {
    // Warm-up: maps whatever the callee allocates, fills the caches, runs lazy setup.
    // Its duration also sets how many calls make up one sample.
    auto start = Clock::now();
    call();
    const double warmup_ms = 1e3 * seconds_since(start);
    Timing t;
    if (warmup_ms < policy.min_sample_ms)
        t.calls_per_sample =
            static_cast<long>(std::ceil(policy.min_sample_ms / std::max(warmup_ms, 1e-6)));

    std::vector<double> per_call_ms;
    const long faults_before = page_faults();
    const auto begin = Clock::now();
    for (;;) {
        start = Clock::now();
        for (long i = 0; i < t.calls_per_sample; ++i) call();
        per_call_ms.push_back(1e3 * seconds_since(start) / static_cast<double>(t.calls_per_sample));

        const int n = static_cast<int>(per_call_ms.size());
        const double elapsed = seconds_since(begin);
        if (n >= policy.max_samples) break;
        if (n >= policy.min_samples && elapsed >= policy.min_seconds) break;
        if (n >= policy.floor_samples && elapsed >= policy.max_seconds) break;
    }
    t.samples = static_cast<int>(per_call_ms.size());
    t.faults_per_call = static_cast<double>(page_faults() - faults_before) /
                        (static_cast<double>(t.samples) * static_cast<double>(t.calls_per_sample));
    t.ms_min = *std::min_element(per_call_ms.begin(), per_call_ms.end());
    t.ms_median = median(per_call_ms);
    return t;
}

void fork_join(int n, const std::function<void(int, int)>& body) {
    std::vector<std::thread> workers;
    for (int k = 1; k < n; ++k) workers.emplace_back(body, k, n);
    body(0, n);
    for (auto& w : workers) w.join();
}

template <class T> static void fill_normal_impl(T* out, std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(normal(rng));
}
void fill_normal(double* out, std::size_t n, std::uint64_t seed) { fill_normal_impl(out, n, seed); }
void fill_normal(float* out, std::size_t n, std::uint64_t seed) { fill_normal_impl(out, n, seed); }

} // namespace bench
