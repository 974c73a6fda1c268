// A deliberately naive instance and group norm, for tests only: the definitions of
// bnorm/family.hpp evaluated element by element in long double, each set shifted by its
// first value (exact for data far from zero: x − x₀ of nearby doubles is exact), two
// passes. Good to ~1e-19 of the spread on ordinary and offset data; not for dx that
// cancels beyond ~1e-12 of its terms (the mpmath golden cases cover those).
#pragma once

#include "bnorm/layout.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace bnorm::test {

struct NaiveSets {
    std::vector<double> y, mean, invstd, dx, dgamma, dbeta;
};

/// x of shape (N, P..., C, inner...) with the channel axis `axis` ≥ 1; groups = 0 for
/// instance norm (one set per (n, c)), else G (one set per (n, g), C/G channels each).
/// Empty gamma means γ = 1, empty beta β = 0.
inline NaiveSets naive_sets(const std::vector<double>& x, const Shape& shape, int axis, std::int64_t groups,
                            std::vector<double> gamma, std::vector<double> beta, const std::vector<double>& dy,
                            double eps) {
    using LD = long double;
    const std::size_t rank = shape.size();
    if (axis < 0) axis += int(rank);
    std::int64_t N = shape[0], P = 1, C = shape[std::size_t(axis)], inner = 1;
    for (int d = 1; d < axis; ++d) P *= shape[std::size_t(d)];
    for (std::size_t d = std::size_t(axis) + 1; d < rank; ++d) inner *= shape[d];
    const std::int64_t G = groups ? groups : C, per = C / G, sets = N * G;
    if (gamma.empty()) gamma.assign(std::size_t(C), 1.0);
    if (beta.empty()) beta.assign(std::size_t(C), 0.0);
    const std::size_t n_all = x.size();
    // element i = ((n·P + p)·C + c)·inner + k
    std::vector<std::int64_t> set_of(n_all), chan_of(n_all);
    for (std::size_t i = 0; i < n_all; ++i) {
        const std::int64_t c = std::int64_t(i) / inner % C, n = std::int64_t(i) / (inner * C * P);
        chan_of[i] = c, set_of[i] = n * G + c / per;
    }
    std::vector<LD> shift(std::size_t(sets), 0), sum(std::size_t(sets), 0), count(std::size_t(sets), 0);
    std::vector<char> seen(std::size_t(sets), 0);
    for (std::size_t i = 0; i < n_all; ++i) {
        const std::size_t s = std::size_t(set_of[i]);
        if (!seen[s]) seen[s] = 1, shift[s] = x[i];
        sum[s] += LD(x[i]) - shift[s], count[s] += 1;
    }
    std::vector<LD> md(static_cast<std::size_t>(sets)), m2(md.size(), 0), inv(md.size());
    for (std::size_t s = 0; s < std::size_t(sets); ++s) md[s] = sum[s] / count[s];
    for (std::size_t i = 0; i < n_all; ++i) {
        const std::size_t s = std::size_t(set_of[i]);
        const LD d = LD(x[i]) - shift[s] - md[s];
        m2[s] += d * d;
    }
    NaiveSets r;
    r.mean.resize(std::size_t(sets)), r.invstd.resize(std::size_t(sets));
    for (std::size_t s = 0; s < std::size_t(sets); ++s) {
        inv[s] = 1 / std::sqrt(m2[s] / count[s] + LD(eps));
        r.mean[s] = double(shift[s] + md[s]), r.invstd[s] = double(inv[s]);
    }
    std::vector<LD> xhat(n_all), sum_g(std::size_t(sets), 0), sum_gx(std::size_t(sets), 0);
    std::vector<LD> dg(std::size_t(C), 0), db(std::size_t(C), 0);
    r.y.resize(n_all), r.dx.resize(n_all);
    for (std::size_t i = 0; i < n_all; ++i) {
        const std::size_t s = std::size_t(set_of[i]), c = std::size_t(chan_of[i]);
        xhat[i] = (LD(x[i]) - shift[s] - md[s]) * inv[s];
        r.y[i] = double(LD(gamma[c]) * xhat[i] + LD(beta[c]));
        const LD g = LD(gamma[c]) * LD(dy[i]); // dx̂
        sum_g[s] += g, sum_gx[s] += g * xhat[i];
        dg[c] += LD(dy[i]) * xhat[i], db[c] += LD(dy[i]);
    }
    for (std::size_t i = 0; i < n_all; ++i) {
        const std::size_t s = std::size_t(set_of[i]), c = std::size_t(chan_of[i]);
        const LD g = LD(gamma[c]) * LD(dy[i]);
        r.dx[i] = double(inv[s] * (g - sum_g[s] / count[s] - xhat[i] * sum_gx[s] / count[s]));
    }
    r.dgamma.assign(dg.begin(), dg.end()), r.dbeta.assign(db.begin(), db.end());
    return r;
}

} // namespace bnorm::test
