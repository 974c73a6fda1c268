// A block's per-channel sums (struct of arrays), and the compensated additions that fold
// partial sums into them.
#pragma once

#include "lanes.hpp"
#include "bnorm/detail/kept.hpp"
#include <cstddef>
#include <vector>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

template <class D> inline void add_compensated(D& sum, D& err, D v) {
    const D s = sum + v;
    const D bb = s - sum;
    err += (sum - (s - bb)) + (v - bb);
    sum = s;
}

/// a − b, rounded once. OnFma, on vectors with FMA, it is computed as fma(b, −1, a): the
/// same bits, on the multiply-add units. The error-free sums are otherwise nearly all
/// additions, which get half of the floating-point units where there are as many adders
/// as FMA units; backward does not use it, its sums waiting longer on memory.
template <bool OnFma> inline double minus(double a, double b) { return a - b; }
template <bool OnFma> inline detail::simd::v4d minus(detail::simd::v4d a, detail::simd::v4d b) {
#if defined(__FMA__)
    if constexpr (OnFma) return _mm256_fmadd_pd(b, _mm256_set1_pd(-1.0), a);
#endif
    return a - b;
}
template <bool OnFma> inline detail::simd::v8d minus(detail::simd::v8d a, detail::simd::v8d b) {
#if defined(__AVX512F__)
    if constexpr (OnFma) return _mm512_fmadd_pd(b, detail::simd::v8d{} - 1.0, a);
#endif
    return a - b;
}

/// Folds a plain partial sum into a compensated one.
inline void fold(double& sum, double& err, double& plain) {
    add_compensated(sum, err, plain);
    plain = 0;
}

/// Sums over some values of every channel, struct-of-arrays so that loops over channels
/// vectorize, around a reference K per channel (any of the channel's values: the sums are
/// error-free, so a poor reference costs at most log2(count) of the ~106 bits):
/// s1 = Σ(x − K), s2 = Σ(x − K)², and for backward b1 = Σ dy, b2 = Σ dy·(x − K), each with
/// its compensation term. The plain kernels (float32) leave the compensation terms at
/// zero and also sum b3 = Σ dy², which bounds their rounding errors (certificates.hpp);
/// so do the biased kernels, which also count their folds. The error-free kernels sum b3
/// compensated (b3_err), for pass_b_enough.
struct Sums {
    double *n, *K, *s1, *s1_err, *s2, *s2_err, *max_abs, *folds, *b1, *b1_err, *b2, *b2_err, *dy_max_abs, *b3, *b3_err;
    double* plain; // room for the plain kernels' partial sums: 2 or 5 arrays, padded(C) apart
    void reset(std::size_t C, bool backward) {
        const std::size_t stride = padded(C); // each array on a cache line
        double* p = line_arrays(storage_, backward ? 20 : 10, C); // one allocation, reused across blocks
        for (double** v : {&n, &K, &s1, &s1_err, &s2, &s2_err, &max_abs, &folds}) *v = p, p += stride;
        for (double** v : {&b1, &b1_err, &b2, &b2_err, &dy_max_abs, &b3, &b3_err})
            *v = backward ? (p += stride) - stride : nullptr;
        plain = p;
    }

private:
    std::vector<double, detail::Kept<double>> storage_;
};

} // namespace
} // namespace bnorm::kernels
