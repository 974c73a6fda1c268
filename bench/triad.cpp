// The memory-bandwidth yardsticks every kernel is compared with: STREAM-like streams that
// read and write the same numbers of arrays as the kernels' passes do, measured in the
// same run. Each stream is a plain loop over eight-double vectors (GCC's vector
// extension, lowered to the build's widest registers), so that what limits it is memory.
#include "bench.hpp"

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace bench {
namespace {

using v8 = double __attribute__((vector_size(64)));

v8 load(const double* p) {
    v8 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

void store(double* p, v8 v) { std::memcpy(p, &v, sizeof v); }

// A store that bypasses the caches (non-temporal), as bnorm's pass B writes outputs of
// 16 MiB or more: it saves the read of each line that an ordinary store does first.
// p is 64-byte aligned. Builds without SSE2 store the ordinary way.
void store_nt(double* p, v8 v) {
#if defined(__AVX512F__)
    __m512d w;
    std::memcpy(&w, &v, sizeof w);
    _mm512_stream_pd(p, w);
#elif defined(__AVX__)
    __m256d w[2];
    std::memcpy(w, &v, sizeof w);
    _mm256_stream_pd(p, w[0]);
    _mm256_stream_pd(p + 4, w[1]);
#elif defined(__SSE2__)
    __m128d w[4];
    std::memcpy(w, &v, sizeof w);
    for (int j = 0; j < 4; ++j) _mm_stream_pd(p + 2 * j, w[j]);
#else
    store(p, v);
#endif
}

// Makes the streamed stores visible before the threads join.
void fence_nt() {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

/// a[i] = f(i) over [r.begin, r.end): one by one up to a multiple of eight (every array
/// is 64-byte aligned, so a + i then is too), then eight at a time with `put`, then the
/// rest one by one. f(i) gives eight values when called with a v8 tag, one otherwise.
template <class Put, class F> void write_range(double* a, Range r, Put put, F f) {
    std::size_t i = r.begin;
    for (; i < r.end && i % 8 != 0; ++i) a[i] = f(double{}, i);
    for (; i + 8 <= r.end; i += 8) put(a + i, f(v8{}, i));
    for (; i < r.end; ++i) a[i] = f(double{}, i);
}

template <class T> T at(const double* p, std::size_t i) {
    if constexpr (std::is_same_v<T, v8>) return load(p + i);
    else return p[i];
}

} // namespace

const char* stream_name(Stream s) {
    switch (s) {
    case Stream::triad: return "triad";
    case Stream::triad_nt: return "triad_nt";
    case Stream::copy: return "copy";
    case Stream::copy_nt: return "copy_nt";
    case Stream::read2: return "read2";
    }
    return "?";
}

int stream_arrays(Stream s) {
    switch (s) {
    case Stream::triad:
    case Stream::triad_nt: return 3;
    case Stream::copy:
    case Stream::copy_nt:
    case Stream::read2: return 2;
    }
    return 0;
}

Triad::Triad(std::size_t bytes_per_array)
    : a_(bytes_per_array / sizeof(double), 0.0),
      b_(a_.size(), 1.0),
      c_(a_.size(), 2.0) {}

Timing Triad::measure(Stream stream, int threads, const RepPolicy& policy) {
    const double s = 3.0;
    double* a = a_.data();
    const double* b = b_.data();
    const double* c = c_.data();
    const std::size_t n = a_.size();
    const bool nt = stream == Stream::triad_nt || stream == Stream::copy_nt;
    const auto triad = [&](auto tag, std::size_t i) {
        using T = decltype(tag);
        return at<T>(b, i) + s * at<T>(c, i);
    };
    const auto scale = [&](auto tag, std::size_t i) { return s * at<decltype(tag)>(b, i); };
    std::vector<double> sums(static_cast<std::size_t>(threads));
    const Timing t = bench::measure(
        [&] {
            fork_join(threads, [&](int k, int parts) {
                const Range r = part(n, k, parts);
                if (stream == Stream::read2) {
                    sums[static_cast<std::size_t>(k)] = sum2(b, c, r);
                    return;
                }
                const bool three = stream == Stream::triad || stream == Stream::triad_nt;
                if (nt) {
                    three ? write_range(a, r, store_nt, triad) : write_range(a, r, store_nt, scale);
                    fence_nt();
                } else {
                    three ? write_range(a, r, store, triad) : write_range(a, r, store, scale);
                }
            });
        },
        policy);
    for (double v : sums) sink_ += v; // the sums are used, so the reads are not optimised away
    return t;
}

double Triad::sum2(const double* b, const double* c, Range r) {
    // Four vector accumulators: the additions' latency never waits on memory's. Lines
    // 2 KiB ahead are prefetched, as bnorm's pass A does (a few percent here, 2026-12-06:
    // 17.5 against 17.0 GB/s with one thread): the yardstick is the fastest plain read.
    constexpr std::size_t ahead = 2048 / sizeof(double);
    std::size_t i = r.begin;
    double head = 0;
    for (; i < r.end && i % 8 != 0; ++i) head += b[i] + c[i];
    v8 acc[4] = {};
    for (; i + 32 <= r.end; i += 32) {
        for (int j = 0; j < 4; ++j) { // the addresses as integers: a prefetch past the end never faults
            __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(b + i) + 8 * (ahead + 8 * j)));
            __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(c + i) + 8 * (ahead + 8 * j)));
        }
        for (int j = 0; j < 4; ++j) acc[j] += load(b + i + 8 * j) + load(c + i + 8 * j);
    }
    for (; i < r.end; ++i) head += b[i] + c[i];
    const v8 v = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (int j = 0; j < 8; ++j) head += v[j];
    return head;
}

} // namespace bench
