// A deliberately naive batch norm, written only for the tests (benchdnn's ref_bnorm idea):
// textbook formulas in long double, walking the full n-d index with the channel taken from
// the multi-index, so it shares nothing with the library's (outer, C, inner) kernel.
// Accurate to ~1e-19 relative on well-conditioned data, which is all it is used for.
#pragma once

#include "bnorm/layout.hpp"

#include <cmath>
#include <vector>

namespace bnorm::test {

struct NaiveResult {
    std::vector<double> y, mean, invstd, dx, dgamma, dbeta;
};

/// Channel of every flat C-order index of `shape` along `axis` (already non-negative).
inline std::vector<std::size_t> channel_of_each_element(const Shape& shape, int axis) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<std::size_t> ch(static_cast<std::size_t>(n));
    std::vector<std::int64_t> idx(shape.size(), 0);
    for (std::int64_t i = 0; i < n; ++i) {
        ch[i] = static_cast<std::size_t>(idx[axis]);
        for (std::size_t d = shape.size(); d-- > 0;) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
    return ch;
}

inline NaiveResult naive_batchnorm(const std::vector<double>& x, const Shape& shape, int axis,
                                   const std::vector<double>& gamma, const std::vector<double>& beta,
                                   const std::vector<double>& dy, long double eps) {
    using LD = long double;
    const std::size_t C = static_cast<std::size_t>(shape[axis]);
    const std::vector<std::size_t> ch = channel_of_each_element(shape, axis);
    std::vector<LD> count(C, 0), sum(C, 0), sq(C, 0), sdy(C, 0), sdyxh(C, 0);
    for (std::size_t i = 0; i < x.size(); ++i) count[ch[i]] += 1, sum[ch[i]] += x[i];
    std::vector<LD> mean(C), invstd(C);
    for (std::size_t c = 0; c < C; ++c) mean[c] = sum[c] / count[c];
    for (std::size_t i = 0; i < x.size(); ++i) sq[ch[i]] += (x[i] - mean[ch[i]]) * (x[i] - mean[ch[i]]);
    for (std::size_t c = 0; c < C; ++c) invstd[c] = 1 / std::sqrt(sq[c] / count[c] + eps);

    NaiveResult r;
    r.y.resize(x.size());
    r.dx.resize(x.size());
    std::vector<LD> xhat(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        const std::size_t c = ch[i];
        xhat[i] = (x[i] - mean[c]) * invstd[c];
        r.y[i] = static_cast<double>(gamma[c] * xhat[i] + beta[c]);
        sdy[c] += dy[i];
        sdyxh[c] += dy[i] * xhat[i];
    }
    // dx = (invstd/m)·(m·dx̂ − Σ dx̂ − x̂·Σ dx̂·x̂), dx̂ = γ·dy: the form of the issue, not
    // the library's rearrangement.
    for (std::size_t i = 0; i < x.size(); ++i) {
        const std::size_t c = ch[i];
        const LD m = count[c];
        r.dx[i] = static_cast<double>(invstd[c] / m *
                                      (m * gamma[c] * dy[i] - gamma[c] * sdy[c] - xhat[i] * gamma[c] * sdyxh[c]));
    }
    for (std::size_t c = 0; c < C; ++c) {
        r.mean.push_back(static_cast<double>(mean[c]));
        r.invstd.push_back(static_cast<double>(invstd[c]));
        r.dgamma.push_back(static_cast<double>(sdyxh[c]));
        r.dbeta.push_back(static_cast<double>(sdy[c]));
    }
    return r;
}

} // namespace bnorm::test
