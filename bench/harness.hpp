// The measuring harness of bnorm_bench: pre-touched buffers, repeated timing with min
// and median, and a plain fork-join over threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace bench {

/// 64-byte aligned raw memory, released with free_aligned(). Throws std::bad_alloc.
void* allocate_aligned(std::size_t bytes);
void free_aligned(void* p);

/// A 64-byte aligned array of n elements, written once on construction, so that its
/// pages are mapped before anything is timed (a timed run never page-faults on it).
template <class T> class Buffer {
public:
    Buffer() = default;
    explicit Buffer(std::size_t n, T fill = T{})
        : n_(n), data_(static_cast<T*>(allocate_aligned(n * sizeof(T)))) {
        for (std::size_t i = 0; i < n; ++i) data_[i] = fill;
    }
    T* data() { return data_.get(); }
    const T* data() const { return data_.get(); }
    std::size_t size() const { return n_; }
    std::size_t bytes() const { return n_ * sizeof(T); }
    T& operator[](std::size_t i) { return data_[i]; }

private:
    struct Free {
        void operator()(T* p) const { free_aligned(p); }
    };
    std::size_t n_ = 0;
    std::unique_ptr<T[], Free> data_;
};

/// When to stop sampling (bench/cases.json, "repetitions", explains the fields).
struct RepPolicy {
    int min_samples = 10;
    int max_samples = 30;
    int floor_samples = 3;
    double min_seconds = 0.5;
    double max_seconds = 4.0;
    double min_sample_ms = 2.0;
};

/// The result of measure(): times are per call.
struct Timing {
    double ms_min = 0;
    double ms_median = 0;
    int samples = 0;          ///< timed samples
    long calls_per_sample = 1;
    double faults_per_call = 0; ///< page faults (minor + major) per timed call
};

/// Times `call`: one untimed warm-up call, then samples as `policy` says. A sample is
/// `calls_per_sample` back-to-back calls, chosen so that it lasts min_sample_ms.
Timing measure(const std::function<void()>& call, const RepPolicy& policy);

/// Runs body(k, n) for k = 0..n-1 on n threads (the caller runs k = 0) and joins them.
void fork_join(int n, const std::function<void(int k, int n)>& body);

/// The contiguous part [begin, end) of [0, size) that worker k of n takes.
struct Range {
    std::size_t begin, end;
};
inline Range part(std::size_t size, int k, int n) {
    return {size * static_cast<std::size_t>(k) / static_cast<std::size_t>(n),
            size * static_cast<std::size_t>(k + 1) / static_cast<std::size_t>(n)};
}

/// Deterministic pseudo-random normal numbers (mean 0, std 1) for test data.
void fill_normal(double* out, std::size_t n, std::uint64_t seed);
void fill_normal(float* out, std::size_t n, std::uint64_t seed);

} // namespace bench
