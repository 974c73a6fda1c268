// A deliberately naive forward and backward of the normalization family, written only for
// tests/test_gradcheck_family.cpp: textbook formulas in long double, with each element's
// set and parameter taken from its multi-index, so it shares nothing with the library.
// The backward can carry one deliberate bug (a mutant); unmutated it is accurate to
// ~1e-18 relative on well-conditioned data, which is all it is used for.
#pragma once

#include "bnorm/family.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace bnorm::test {

enum class FamilyMutant {
    none,
    unbiased_variance,    // var = Σ(x − mean)²/(m − 1)
    eps_outside_sqrt,     // invstd = 1/(sqrt(var) + eps)
    one_element,          // a single element of dx off by `one_element_off` relative
    rms_sum_dxhat,        // rms: dx with a − mean(dx̂) term, as if the mean were subtracted
    layer_dgamma_axes,    // layer: dγ summed over one axis too many (axes 0..axis), broadcast
    layer_no_xhat_term,   // layer: dx without the x̂·mean(dx̂·x̂) term
    group_channel_stats,  // group: the statistics of each channel, not of each group
    group_dbeta_per_group, // group: dβ summed over the whole group, not per channel
    instance_batch_stats, // instance: the statistics of each channel over all samples
};

struct NaiveFamily {
    std::vector<double> y, dx, dgamma, dbeta;
};

/// Each element's set (of statistics) and parameter, from its multi-index: instance
/// (n, c); group (n, c / (C/G)); layer and rms: the index over the axes before `axis`,
/// the parameter the index over the axes from `axis` on. `p` gives norm, shape, axis, groups.
struct NaiveIndex {
    std::vector<std::int64_t> set, param, channel_set; // channel_set: the set by channel alone
    std::int64_t sets = 0, params = 0;
};

inline NaiveIndex naive_index(const NormProblem& p) {
    const Shape& shape = p.shape;
    const std::size_t rank = shape.size(), a = std::size_t(p.axis);
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    NaiveIndex ix;
    std::vector<std::int64_t> idx(rank, 0);
    const bool rows = p.norm == Norm::layer || p.norm == Norm::rms;
    const std::int64_t C = rows ? 0 : shape[a];
    const std::int64_t per_group = p.norm == Norm::group ? C / p.groups : 1;
    for (std::int64_t i = 0; i < n; ++i) {
        if (rows) {
            std::int64_t lead = 0, tail = 0;
            for (std::size_t d = 0; d < a; ++d) lead = lead * shape[d] + idx[d];
            for (std::size_t d = a; d < rank; ++d) tail = tail * shape[d] + idx[d];
            ix.set.push_back(lead);
            ix.param.push_back(tail);
            ix.channel_set.push_back(lead);
        } else {
            const std::int64_t c = idx[a];
            ix.set.push_back(idx[0] * (C / per_group) + c / per_group);
            ix.param.push_back(c);
            ix.channel_set.push_back(idx[0] * C + c);
        }
        for (std::size_t d = rank; d-- > 0;) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
    for (auto s : ix.set) ix.sets = std::max(ix.sets, s + 1);
    for (auto q : ix.param) ix.params = std::max(ix.params, q + 1);
    return ix;
}

/// f = Σ dy·y of the forward pass, in long double (for finite differences).
inline long double naive_objective(const NormProblem& p, const NaiveIndex& ix, const std::vector<long double>& x,
                                   const std::vector<long double>& gamma, const std::vector<long double>& beta,
                                   const std::vector<double>& dy, long double eps) {
    using LD = long double;
    const bool centered = p.norm != Norm::rms;
    std::vector<LD> count(ix.sets, 0), sum(ix.sets, 0), sq(ix.sets, 0);
    for (std::size_t i = 0; i < x.size(); ++i) count[ix.set[i]] += 1, sum[ix.set[i]] += centered ? x[i] : 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const LD d = x[i] - sum[ix.set[i]] / count[ix.set[i]];
        sq[ix.set[i]] += d * d;
    }
    LD f = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const std::int64_t s = ix.set[i];
        const LD xhat = (x[i] - sum[s] / count[s]) / std::sqrt(sq[s] / count[s] + eps);
        f += dy[i] * (gamma[ix.param[i]] * xhat + (centered ? beta[ix.param[i]] : 0));
    }
    return f;
}

/// Forward and backward (with one mutant, or none) of f = Σ dy ⊙ y. gamma has p.params
/// values; beta too, or is empty for rms (then dbeta is empty).
inline NaiveFamily naive_family(const NormProblem& p, const std::vector<double>& x, const std::vector<double>& gamma,
                                const std::vector<double>& beta, const std::vector<double>& dy, double eps_in,
                                FamilyMutant mu = FamilyMutant::none, double one_element_off = 1e-6) {
    using LD = long double;
    const NaiveIndex ix = naive_index(p);
    const bool centered = p.norm != Norm::rms;
    // the sets the statistics are taken over: the problem's, or a mutant's
    std::vector<std::int64_t> stat_set = ix.set;
    if (mu == FamilyMutant::group_channel_stats) stat_set = ix.channel_set;
    if (mu == FamilyMutant::instance_batch_stats) stat_set = ix.param; // per channel, all samples
    std::int64_t stat_sets = 0;
    for (auto s : stat_set) stat_sets = std::max(stat_sets, s + 1);

    const std::size_t n = x.size();
    std::vector<LD> count(stat_sets, 0), sum(stat_sets, 0), sq(stat_sets, 0), mean(stat_sets, 0), invstd(stat_sets);
    for (std::size_t i = 0; i < n; ++i) count[stat_set[i]] += 1, sum[stat_set[i]] += x[i];
    for (std::int64_t s = 0; s < stat_sets; ++s) mean[s] = centered ? sum[s] / count[s] : 0;
    for (std::size_t i = 0; i < n; ++i) sq[stat_set[i]] += (x[i] - mean[stat_set[i]]) * (x[i] - mean[stat_set[i]]);
    const LD eps = eps_in;
    for (std::int64_t s = 0; s < stat_sets; ++s) {
        const LD var = sq[s] / (mu == FamilyMutant::unbiased_variance ? count[s] - 1 : count[s]);
        invstd[s] = mu == FamilyMutant::eps_outside_sqrt ? 1 / (std::sqrt(var) + eps) : 1 / std::sqrt(var + eps);
    }

    NaiveFamily r;
    r.y.resize(n);
    r.dx.resize(n);
    std::vector<LD> xhat(n), dxhat(n), sum_dxhat(stat_sets, 0), sum_dxhat_xhat(stat_sets, 0);
    std::vector<LD> dgamma(ix.params, 0), dbeta(ix.params, 0);
    for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t s = stat_set[i], q = ix.param[i];
        xhat[i] = (x[i] - mean[s]) * invstd[s];
        r.y[i] = double(gamma[q] * xhat[i] + (centered ? beta[q] : 0));
        dxhat[i] = gamma[q] * dy[i];
        sum_dxhat[s] += dxhat[i];
        sum_dxhat_xhat[s] += dxhat[i] * xhat[i];
        dgamma[q] += dy[i] * xhat[i];
        dbeta[q] += dy[i];
    }
    // dx = invstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)); rms has no mean(dx̂) term.
    for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t s = stat_set[i];
        const bool term2 = centered || mu == FamilyMutant::rms_sum_dxhat;
        const bool term3 = mu != FamilyMutant::layer_no_xhat_term;
        r.dx[i] = double(invstd[s] * (dxhat[i] - (term2 ? sum_dxhat[s] / count[s] : 0) -
                                      (term3 ? xhat[i] * sum_dxhat_xhat[s] / count[s] : 0)));
    }
    if (mu == FamilyMutant::one_element) r.dx[n / 2] *= 1 + one_element_off;

    if (mu == FamilyMutant::layer_dgamma_axes) {
        // one axis too many: the sums over axes 0..axis, each broadcast over axis `axis`
        const std::int64_t inner = ix.params / p.shape[std::size_t(p.axis)];
        std::vector<LD> wrong(inner, 0);
        for (std::int64_t q = 0; q < ix.params; ++q) wrong[q % inner] += dgamma[q];
        for (std::int64_t q = 0; q < ix.params; ++q) dgamma[q] = wrong[q % inner];
    }
    if (mu == FamilyMutant::group_dbeta_per_group) {
        const std::int64_t per_group = ix.params / p.groups;
        std::vector<LD> per(p.groups, 0);
        for (std::int64_t q = 0; q < ix.params; ++q) per[q / per_group] += dbeta[q];
        for (std::int64_t q = 0; q < ix.params; ++q) dbeta[q] = per[q / per_group];
    }
    for (std::int64_t q = 0; q < ix.params; ++q) {
        r.dgamma.push_back(double(dgamma[q]));
        if (centered) r.dbeta.push_back(double(dbeta[q]));
    }
    return r;
}

} // namespace bnorm::test
