// Four doubles as one value, for the streaming kernels. Internal to the library.
//
// Arithmetic is GCC/Clang's vector extension (+, −, *, comparisons), which any target
// compiles; the few operations whose generic lowering is poor (float ↔ double conversion,
// FMA) use AVX/FMA instructions when the build targets them (x86-64-v3, see
// CMakeLists.txt) and a lane-by-lane fallback otherwise. Both give the same bits: every
// operation is a correctly rounded IEEE operation per lane, FMA included.
#pragma once

#include <cmath>
#include <cstring>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace bnorm::detail::simd {

using v4d = double __attribute__((vector_size(32)));
constexpr int kWidth = 4;

/// Vector registers the build's instruction set has: AVX-512VL gives 32 for 256-bit vectors.
#if defined(__AVX512VL__)
constexpr int kRegisters = 32;
#else
constexpr int kRegisters = 16;
#endif

inline v4d splat(double a) { return v4d{a, a, a, a}; }

inline v4d load(const double* p) {
    v4d v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline v4d load(const float* p) {
#if defined(__AVX__)
    return _mm256_cvtps_pd(_mm_loadu_ps(p));
#else
    return v4d{double(p[0]), double(p[1]), double(p[2]), double(p[3])};
#endif
}

inline void store(double* p, v4d v) { std::memcpy(p, &v, sizeof v); }

/// Rounds each lane to float (round to nearest even, like a scalar cast).
inline void store(float* p, v4d v) {
#if defined(__AVX__)
    _mm_storeu_ps(p, _mm256_cvtpd_ps(v));
#else
    for (int j = 0; j < kWidth; ++j) p[j] = float(v[j]);
#endif
}

/// store(p, v) bypassing the caches (a non-temporal store) where the build has it: for
/// outputs far larger than the caches, which are not read again soon. p must be 16-byte
/// aligned. Call stream_fence() before other threads read what was stored.
inline void stream(float* p, v4d v) {
#if defined(__AVX__)
    _mm_stream_ps(p, _mm256_cvtpd_ps(v));
#else
    store(p, v);
#endif
}

/// The same for four doubles; p must be 32-byte aligned.
inline void stream(double* p, v4d v) {
#if defined(__AVX__)
    _mm256_stream_pd(p, v);
#else
    store(p, v);
#endif
}

inline void stream_fence() {
#if defined(__AVX__)
    _mm_sfence();
#endif
}

/// a·b + c rounded once, per lane.
inline v4d fma(v4d a, v4d b, v4d c) {
#if defined(__FMA__)
    return _mm256_fmadd_pd(a, b, c);
#else
    return v4d{std::fma(a[0], b[0], c[0]), std::fma(a[1], b[1], c[1]), std::fma(a[2], b[2], c[2]),
               std::fma(a[3], b[3], c[3])};
#endif
}

/// The correctly rounded square root, per lane.
inline double sqrt(double v) { return std::sqrt(v); }
inline v4d sqrt(v4d v) {
#if defined(__AVX__)
    return _mm256_sqrt_pd(v);
#else
    return v4d{std::sqrt(v[0]), std::sqrt(v[1]), std::sqrt(v[2]), std::sqrt(v[3])};
#endif
}

inline double sum_lanes(v4d v) { return (v[0] + v[1]) + (v[2] + v[3]); }

/// Eight doubles, for the float64 biased sums where the build has AVX-512: on Zen 4 one
/// instruction runs as two 256-bit halves, at the same arithmetic rate as two v4d, but
/// it is one entry in the schedulers, which then hide twice the latency. Elsewhere, the
/// same lane-wise operations on the generic lowering.
using v8d = double __attribute__((vector_size(64)));
using v8f = float __attribute__((vector_size(32)));

inline v8d load8(const double* p) {
    v8d v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline v8d load8(const float* p) { // eight floats, exactly, as doubles
#if defined(__AVX512F__) // one vcvtps2pd (GCC 12 converts a generic vector in two halves,
    // and warns about _mm512_cvtps_pd's undefined pass-through; all lanes kept here)
    return _mm512_maskz_cvtps_pd(0xff, _mm256_loadu_ps(p));
#endif
    v8f f;
    std::memcpy(&f, p, sizeof f);
    return __builtin_convertvector(f, v8d);
}
inline void store(double* p, v8d v) { std::memcpy(p, &v, sizeof v); }
/// Eight doubles rounded to float into p[0..8): stored, or streamed (non-temporal, with
/// AVX; p then 32-byte aligned, as every caller's eight-lane path has it: one 32-byte
/// stream, which two 16-byte ones are slower than).
inline void store(float* p, v8d v) {
    const v8f f = __builtin_convertvector(v, v8f);
    std::memcpy(p, &f, sizeof f);
}
inline void stream(float* p, v8d v) {
#if defined(__AVX__)
    _mm256_stream_ps(p, __m256(__builtin_convertvector(v, v8f)));
#else
    store(p, v);
#endif
}
/// The same for eight doubles; p must be 32-byte aligned, as for four lanes.
inline void stream(double* p, v8d v) {
#if defined(__AVX512F__)
    _mm256_stream_pd(p, v4d{v[0], v[1], v[2], v[3]}); // (GCC 12 warns about _mm512_extractf64x4_pd)
    _mm256_stream_pd(p + 4, v4d{v[4], v[5], v[6], v[7]});
#else
    store(p, v);
#endif
}

/// The halves of eight lanes, and eight lanes from two halves.
inline v4d low_half(v8d v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3); }
inline v4d high_half(v8d v) { return __builtin_shufflevector(v, v, 4, 5, 6, 7); }
inline v8d join(v4d lo, v4d hi) { return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7); }

/// a·b + c rounded once, per lane. Without AVX-512, on the two halves: a loop of
/// std::fma over the lanes compiled to scalar code (x86-64-v3 builds ran the family's row
/// kernels 8x to 12x slower than x86-64-v4 ones, docs/performance.md).
inline v8d fma(v8d a, v8d b, v8d c) {
#if defined(__AVX512F__)
    return _mm512_fmadd_pd(a, b, c);
#else
    return join(fma(low_half(a), low_half(b), low_half(c)), fma(high_half(a), high_half(b), high_half(c)));
#endif
}

/// The correctly rounded square root, per lane.
inline v8d sqrt(v8d v) {
#if defined(__AVX512F__)
    return _mm512_maskz_sqrt_pd(0xff, v); // (GCC 12 warns about _mm512_sqrt_pd's pass-through)
#else
    return join(sqrt(low_half(v)), sqrt(high_half(v)));
#endif
}

inline v8d abs(v8d v) {
    using v8l = long long __attribute__((vector_size(64)));
    constexpr long long kMagnitude = 0x7fffffffffffffffLL;
    return (v8d)((v8l)v & (v8l{} + kMagnitude));
}

/// |v| per lane (the sign bit cleared, as std::abs does).
inline v4d abs(v4d v) {
    using v4l = long long __attribute__((vector_size(32)));
    constexpr long long kMagnitude = 0x7fffffffffffffffLL;
    return (v4d)((v4l)v & v4l{kMagnitude, kMagnitude, kMagnitude, kMagnitude});
}

/// Whether a ≥ b in every lane (false where either is NaN).
inline bool all_at_least(v4d a, v4d b) {
    using v4l = long long __attribute__((vector_size(32)));
    const v4l m = a >= b;
    return (m[0] & m[1] & m[2] & m[3]) != 0;
}
inline bool all_at_least(v8d a, v8d b) {
#if defined(__AVX512F__)
    return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ) == 0xff;
#else
    for (int j = 0; j < 8; ++j)
        if (!(a[j] >= b[j])) return false;
    return true;
#endif
}
inline bool all_at_least(double a, double b) { return a >= b; }
/// Whether a0 ≥ b0 and a1 ≥ b1 in every lane: two vectors' tests behind one branch.
inline bool all_at_least(v8d a0, v8d b0, v8d a1, v8d b1) {
#if defined(__AVX512F__)
    return (_mm512_cmp_pd_mask(a0, b0, _CMP_GE_OQ) & _mm512_cmp_pd_mask(a1, b1, _CMP_GE_OQ)) == 0xff;
#else
    return all_at_least(a0, b0) && all_at_least(a1, b1);
#endif
}

/// Per lane, a ≥ b ? yes : no (no where either is NaN).
inline double at_least_or(double a, double b, double yes, double no) { return a >= b ? yes : no; }
inline v4d at_least_or(v4d a, v4d b, v4d yes, v4d no) { return a >= b ? yes : no; }
inline v8d at_least_or(v8d a, v8d b, v8d yes, v8d no) { return a >= b ? yes : no; }
inline double abs(double v) { return std::abs(v); }

} // namespace bnorm::detail::simd
