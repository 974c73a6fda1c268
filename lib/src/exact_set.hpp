// The last tier of the backward pass: one set's dx evaluated exactly before its rounding,
// for the sets whose dx is a tiny fraction of its terms (dy nearly an affine function of
// x, two values with eps ≪ var) or exactly 0 (a constant dy), where double-double sums
// leave ~2^-100 of the terms in place of dx (exact_set.cpp). Internal.
#pragma once

#include "ddouble.hpp"
#include "stats/expansion.hpp"

#include <cstddef>

namespace bnorm::detail {

/// One set of m values x with the gradient g = dx̂ (g_hi + g_lo exactly; g_lo may be
/// null), mean subtracted (`centred`: batch, instance, group and layer norm) or not (RMS).
/// With k = m centred and 1 for RMS, and the exact sums of the set:
///   A_i = k·g_i − Σg (RMS: g_i),  b_i = k·x_i − Σx (RMS: x_i),
///   N = k·Σg·x − Σg·Σx (RMS: Σg·x),  D = k·Σx² − (Σx)² + k²·eps (RMS: Σx² + m·eps),
///   dx_i = invstd/k · (A_i − b_i·N/D),  invstd = k/√D (RMS: √(m/D)),
/// which is docs/derivation.md's dx = invstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with every
/// sum written out. N and D are rational in the data, summed exactly (LongSum) and
/// combined exactly (expansions). dx_i is first taken in double-double, with a bound on
/// its error; where that bound is not within 2^-60 of dx_i, A_i·D − b_i·N is evaluated
/// exactly. Every dx_i is then within a few 2^-100 of itself, and exactly 0 when it is.
/// The data is scaled by powers of two to magnitudes near 1 first, so the sums are exact
/// unless a product's low part underflows (terms below 2^-1000 of the set's largest).
class ExactSet {
public:
    ExactSet(const double* x, const double* g_hi, const double* g_lo, std::size_t m, double eps, bool centred);

    /// False when a value is not finite, or var + eps is not a positive double: the
    /// caller's double-double kernel then gives the NaN, or the refusal.
    bool usable() const { return usable_; }
    /// dx_i, double-double.
    dd dx(std::size_t i) const;
    /// Whether every dx_i is 0 (dx̂ constant, the mean subtracted).
    bool zero() const { return zero_; }
    /// invstd·Σ dy·(x − μ) over some of the set's values (x, dy of n; centred sets):
    /// their share of dγ, whatever dy's scale.
    dd share(const double* x, const double* dy, std::size_t n);
    /// Σg, double-double.
    dd sum_g() const { return ldexp(S1d_, eg_); }
    /// Σ g·x̂ = invstd·Σ g·(x − μ) over the whole set (centred sets): batch norm's dγ.
    dd sum_g_xhat() const { return ldexp(mul(expansion::to_dd(N_), over_), eg_); }

private:
    void sum_all(); // the exact sums, N, D and what dx takes from them
    dd cheap(std::size_t i, double& bound) const;
    dd exact(std::size_t i) const;

    const double *x_, *g_hi_, *g_lo_;
    double m_ = 0;
    bool centred_ = true, usable_ = false;
    bool zero_ = false;   // dx̂ constant, mean subtracted: dx = 0, sums not taken yet
    bool summed_ = false; // sum_all has run
    double eps_s_ = 0;    // eps·4^-ex
    int ex_ = 0, eg_ = 0;           // x is scaled by 2^-ex, g by 2^-eg, eps by 4^-ex
    double sx_ = 1, sg_ = 1;        // 2^-ex, 2^-eg
    double scale_ = 0;              // 2^(eg − ex) when normal, else 0
    expansion::Expansion S1_, Sx_, N_, D_;
    dd S1d_{}, Sxd_{}, R_{}, Dd_{}, over_{}; // S1, Σx, N/D, D, invstd/k (all scaled)
    double err_S1_ = 0, err_Sx_ = 0, err_R_ = 0;
};

/// Σ v over n finite values, rounded once to double-double.
inline dd sum_exactly(const double* v, std::size_t n) {
    LongSum s;
    for (std::size_t i = 0; i < n; ++i) s.add(v[i]);
    return expansion::to_dd(expansion::compressed(s.expansion()));
}

/// Σv/n for n finite values, from the exact sum rounded once, as q·2^e with q near 1: a
/// mean far below the values (1e300, −1e300, 1e-10) keeps its bits wherever it is scaled.
struct ScaledMean {
    dd q;
    int e;
    dd scaled(int k) const { return ldexp(q, e - k); } // the mean times 2^-k
};
inline ScaledMean mean_exactly(const double* v, std::size_t n) {
    LongSum s;
    for (std::size_t i = 0; i < n; ++i) s.add(v[i]);
    const int e = s.exponent();
    return {div(expansion::to_dd(expansion::compressed(s.expansion(e))), double(n)), e};
}

} // namespace bnorm::detail
