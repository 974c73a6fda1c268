// Naive references for inference mode and the running-statistics update, written only for
// the tests: textbook formulas in long double, walking the full n-d index (channel from
// the multi-index, as naive_batchnorm.hpp). The batch moments are taken around the
// channel's first value (x − x0 is exact for values near each other), so that data far
// from 0 against its spread (10^6 with spread 10^-3) keeps long double's 64 bits of the
// spread.
#pragma once

#include "naive_batchnorm.hpp"

#include <cmath>
#include <vector>

namespace bnorm::test {

struct NaiveEval {
    std::vector<double> y, dx, dgamma, dbeta;
};

/// y = γ·(x − rm)/sqrt(rv + eps) + β; dx = γ·dy/sqrt(rv + eps), dγ = Σ dy·x̂, dβ = Σ dy.
inline NaiveEval naive_eval(const std::vector<double>& x, const Shape& shape, int axis,
                            const std::vector<double>& gamma, const std::vector<double>& beta,
                            const std::vector<double>& dy, const std::vector<double>& rm,
                            const std::vector<double>& rv, long double eps) {
    using LD = long double;
    const std::size_t C = static_cast<std::size_t>(shape[axis]);
    const std::vector<std::size_t> ch = channel_of_each_element(shape, axis);
    std::vector<LD> inv(C), sdy(C, 0), sdyxh(C, 0);
    for (std::size_t c = 0; c < C; ++c) inv[c] = 1 / std::sqrt(LD(rv[c]) + eps);
    NaiveEval r;
    r.y.resize(x.size()), r.dx.resize(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        const std::size_t c = ch[i];
        const LD xh = (LD(x[i]) - LD(rm[c])) * inv[c];
        r.y[i] = double(LD(gamma[c]) * xh + LD(beta[c]));
        r.dx[i] = double(LD(gamma[c]) * LD(dy[i]) * inv[c]);
        sdy[c] += dy[i];
        sdyxh[c] += LD(dy[i]) * (LD(x[i]) - LD(rm[c]));
    }
    for (std::size_t c = 0; c < C; ++c)
        r.dbeta.push_back(double(sdy[c])), r.dgamma.push_back(double(sdyxh[c] * inv[c]));
    return r;
}

/// PyTorch's update: new = (1 − M)·old + M·batch, the batch variance M2/(m − correction).
inline void naive_update(const std::vector<double>& x, const Shape& shape, int axis, const std::vector<double>& rm,
                         const std::vector<double>& rv, long double momentum, int correction,
                         std::vector<double>& new_mean, std::vector<double>& new_var) {
    using LD = long double;
    const std::size_t C = static_cast<std::size_t>(shape[axis]);
    const std::vector<std::size_t> ch = channel_of_each_element(shape, axis);
    std::vector<LD> first(C, NAN), count(C, 0), s(C, 0), sq(C, 0);
    for (std::size_t i = 0; i < x.size(); ++i)
        if (std::isnan(first[ch[i]])) first[ch[i]] = x[i];
    for (std::size_t i = 0; i < x.size(); ++i) count[ch[i]] += 1, s[ch[i]] += LD(x[i]) - first[ch[i]];
    for (std::size_t i = 0; i < x.size(); ++i) {
        const LD d = (LD(x[i]) - first[ch[i]]) - s[ch[i]] / count[ch[i]];
        sq[ch[i]] += d * d;
    }
    new_mean.assign(C, 0), new_var.assign(C, 0);
    for (std::size_t c = 0; c < C; ++c) {
        const LD mean = first[c] + s[c] / count[c], var = sq[c] / (count[c] - correction);
        new_mean[c] = double((1 - momentum) * LD(rm[c]) + momentum * mean);
        new_var[c] = double((1 - momentum) * LD(rv[c]) + momentum * var);
    }
}

} // namespace bnorm::test
