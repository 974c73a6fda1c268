// A deliberately naive layer norm and RMS norm, written only for the tests from the
// definitions (ONNX LayerNormalization-17, RMSNormalization-23), in __float128 (113-bit
// significand, exponents to 2^±16383): two passes, no compensation, no scaling. Its
// outputs are rounded to double, far beyond float32's and float64's precision on the
// data the tests give it (cancellation to 2^-60 of the terms still leaves ~50 bits).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace bnorm::test {

using quad = __float128;

/// 1/sqrt(v) for v > 0 in quad: v brought to [1, 4) by powers of 4, a double estimate,
/// three Newton steps (each doubles the correct bits: 53 → 113).
inline quad naive_rsqrt(quad v) {
    if (!(v > 0)) return v == 0 ? quad(INFINITY) : quad(NAN);
    if (v == quad(INFINITY)) return 0;
    quad scale = 1; // 1/sqrt(v) = scale/sqrt(v·4^k) with scale = 2^k
    const quad big = quad(0x1p64) * quad(0x1p64), small = 1 / big;
    while (v >= big) v *= small, scale *= quad(0x1p-64);
    while (v < 1 / big) v *= big, scale *= quad(0x1p64);
    while (v >= 4) v /= 4, scale /= 2;
    while (v < 1) v *= 4, scale *= 2;
    quad r = 1 / std::sqrt(double(v));
    for (int i = 0; i < 3; ++i) r = r * (3 - v * r * r) / 2;
    return r * scale;
}

struct NaiveRowsResult {
    std::vector<double> y, mean, invstd, dx, dgamma, dbeta;
};

/// x and dy are (R, D) row-major; gamma, beta have D values or are empty (1 and 0).
template <class T>
NaiveRowsResult naive_rows(const std::vector<T>& x, const std::vector<T>& gamma, const std::vector<T>& beta,
                           const std::vector<T>& dy, std::int64_t R, std::int64_t D, double eps, bool rms) {
    NaiveRowsResult out;
    out.y.resize(x.size()), out.mean.resize(std::size_t(R)), out.invstd.resize(std::size_t(R));
    out.dx.resize(x.size());
    std::vector<quad> dgamma(static_cast<std::size_t>(D), 0), dbeta(static_cast<std::size_t>(D), 0);
    auto g_at = [&](std::int64_t d) { return gamma.empty() ? quad(1) : quad(gamma[std::size_t(d)]); };
    auto b_at = [&](std::int64_t d) { return beta.empty() ? quad(0) : quad(beta[std::size_t(d)]); };
    for (std::int64_t r = 0; r < R; ++r) {
        const T* xr = x.data() + r * D;
        quad mean = 0, var = 0;
        if (!rms) {
            for (std::int64_t d = 0; d < D; ++d) mean += quad(xr[d]);
            mean /= quad(double(D));
        }
        for (std::int64_t d = 0; d < D; ++d) var += (quad(xr[d]) - mean) * (quad(xr[d]) - mean);
        var /= quad(double(D));
        const quad inv = naive_rsqrt(var + quad(eps));
        out.mean[std::size_t(r)] = double(mean), out.invstd[std::size_t(r)] = double(inv);
        std::vector<quad> xhat(static_cast<std::size_t>(D)), dxhat(static_cast<std::size_t>(D));
        quad m1 = 0, m2 = 0;
        for (std::int64_t d = 0; d < D; ++d) {
            xhat[std::size_t(d)] = (quad(xr[d]) - mean) * inv;
            out.y[std::size_t(r * D + d)] = double(g_at(d) * xhat[std::size_t(d)] + b_at(d));
            if (dy.empty()) continue;
            const quad g = quad(dy[std::size_t(r * D + d)]);
            dxhat[std::size_t(d)] = g_at(d) * g;
            m1 += dxhat[std::size_t(d)], m2 += dxhat[std::size_t(d)] * xhat[std::size_t(d)];
            dgamma[std::size_t(d)] += g * xhat[std::size_t(d)], dbeta[std::size_t(d)] += g;
        }
        if (dy.empty()) continue;
        m1 /= quad(double(D)), m2 /= quad(double(D));
        for (std::int64_t d = 0; d < D; ++d)
            out.dx[std::size_t(r * D + d)] =
                double(inv * (dxhat[std::size_t(d)] - (rms ? quad(0) : m1) - xhat[std::size_t(d)] * m2));
    }
    out.dgamma.assign(dgamma.begin(), dgamma.end());
    out.dbeta.assign(dbeta.begin(), dbeta.end());
    return out;
}

} // namespace bnorm::test
