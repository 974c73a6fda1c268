// Which elements of x form each set of statistics, and which γ and β each element uses,
// as gradcheck walks them (bnorm/gradcheck.hpp): every norm of the family in one map.
#pragma once

#include "bnorm/family.hpp"
#include "bnorm/layout.hpp"

#include <cstdint>

namespace bnorm::gradcheck_detail {

/// x (C-contiguous) seen as (N, P, C, I): set s is (n, g) = (s / (C/Cg), s % (C/Cg)), the
/// Cg channels g·Cg … g·Cg + Cg − 1 of sample n over every p and i; its j-th element is
/// (p, cg, i) = (j / (Cg·I), (j / I) % Cg, j % I), in increasing address order.
///   batch:    N = 1, P = outer, Cg = 1: one set per channel; γ by channel
///   instance: N = shape[0], P = shape[1:axis], Cg = 1; γ by channel
///   group:    as instance with Cg = C/G; γ by channel
///   layer, rms: N = sets, P = C = Cg = 1, I = per_set: a row; γ by position j
struct SetMap {
    std::int64_t N = 1, P = 1, C = 1, I = 1, Cg = 1;
    bool rows = false;    ///< γ, β indexed by the position in the set (layer, rms)
    bool centered = true; ///< the mean subtracted (all but rms)

    std::int64_t sets() const { return N * (C / Cg); }
    std::int64_t per_set() const { return P * Cg * I; }
    std::int64_t size() const { return N * P * C * I; }
    std::int64_t params() const { return rows ? I : C; }
    /// γ's of one set: a row's every position, or its Cg channels.
    std::int64_t params_per_set() const { return rows ? I : Cg; }

    /// Flat index in x of element j of set s.
    std::int64_t flat(std::int64_t s, std::int64_t j) const {
        const std::int64_t groups = C / Cg, n = s / groups, g = s % groups;
        const std::int64_t p = j / (Cg * I), cg = (j / I) % Cg, i = j % I;
        return ((n * P + p) * C + g * Cg + cg) * I + i;
    }
    std::int64_t set_of(std::int64_t flat_index) const {
        const std::int64_t c = (flat_index / I) % C, n = flat_index / (I * C) / P;
        return n * (C / Cg) + c / Cg;
    }
    std::int64_t position_in_set(std::int64_t flat_index) const {
        const std::int64_t i = flat_index % I, c = (flat_index / I) % C, p = flat_index / (I * C) % P;
        return (p * Cg + c % Cg) * I + i;
    }
    /// Which of the set's params_per_set() parameters element j uses.
    std::int64_t local_param(std::int64_t j) const { return rows ? j : (j / I) % Cg; }
    /// The index into γ of the set's local parameter l.
    std::int64_t param(std::int64_t s, std::int64_t l) const { return rows ? l : (s % (C / Cg)) * Cg + l; }
};

/// Batch norm over an (outer, C, inner) layout.
inline SetMap batch_sets(const Layout& l) { return SetMap{1, l.outer, l.channels, l.inner, 1, false, true}; }

/// Any norm of the family (batch: its layout's).
inline SetMap norm_sets(const NormProblem& p) {
    switch (p.norm) {
    case Norm::batch: return SetMap{1, p.middle, p.channels, p.inner, 1, false, true};
    case Norm::instance: return SetMap{p.samples, p.middle, p.channels, p.inner, 1, false, true};
    case Norm::group: return SetMap{p.samples, p.middle, p.channels, p.inner, p.channels / p.groups, false, true};
    case Norm::layer:
    case Norm::rms: return SetMap{p.sets, 1, 1, p.per_set, 1, true, p.norm == Norm::layer};
    }
    return {};
}

} // namespace bnorm::gradcheck_detail
