// Instance and group norm as views over batch norm's engine. x is seen as batch norm's
// (outer, C', inner) channel layout: per sample (P, C, inner), or, when P = 1 (NCHW),
// all samples at once as (1, N·C, inner). A set of statistics is `per` consecutive
// channels of that layout: one for instance norm, C/G for group norm (the channels of a
// group are consecutive). So the engine's certified pass A gives every channel's moments
// (Moments, double-double), Chan's formula merges a set's channels, and batch norm's
// pass B kernels take per-channel coefficients built from the set's statistics
// (given_coefficients.cpp). No kernel of its own: only the per-set glue, the checks that
// a set's sums (several channels' certified sums added) are still good enough, and a
// scalar path for what the kernels cannot express (γ_c = 0 in backward, data beyond the
// fast range). docs/derivation.md, "Instance and group norm", has the derivation.
#include "family.hpp"
#include "family_sets.hpp"

#include "certificates.hpp"
#include "certified_moments.hpp"
#include "lanes.hpp"
#include "pass_state.hpp"

#include <cstdint>
#include <vector>

namespace bnorm::family {
namespace {

// ---- forward ------------------------------------------------------------------------------

template <class T>
void forward_piece(const View& v, const T* x, const T* gamma, const T* beta, double eps, const Piece& pc, int threads,
                   T* y, T* mean, T* invstd) {
    const Layout& l = pc.l;
    const T* xp = x + pc.offset;
    // Pass A: where a set is contiguous (P = 1), on the sets' layout, a set one channel of
    // the engine's, certified as such; else (channels-last) on the channels' layout, `per`
    // channels merged per set (runs of per·inner values would take the engine's kernels
    // for runs, slow on runs of a few values, where rows of C channels are vectorised).
    const bool contiguous = v.P == 1;
    const Layout ls = contiguous ? Layout{1, l.channels / v.per, v.per * l.inner} : l;
    const std::int64_t per = contiguous ? 1 : v.per; // channels of ls per set
    std::vector<kernels::Certified> how;
    MomentsVector ms = kernels::certified_moments<T, false>(xp, nullptr, ls, ls.channels, eps, threads, how);
    const std::vector<char> fast = kernels::in_fast_range(ms, sizeof(T) == 8);
    // Merged, the channels' certificates (M2 against M2_c + m_c·eps, the mean against σ_c
    // and |μ_c|) add up within the set's for the first two (Σ M2_c ≤ M2, Σ (m_c/m)·σ_c ≤
    // σ), the last only where the channels' means do not cancel: a set whose mean is not
    // within tol.scalar of itself is summed again error-free.
    const double scalar = (sizeof(T) == 4 ? kernels::kFloat32Tolerance : kernels::kFloat64Tolerance).scalar;
    std::vector<std::int64_t> again;
    for (std::int64_t j0 = 0; per > 1 && j0 < ls.channels; j0 += per) {
        if (!all_fast(fast, j0, per)) continue;
        const Moments m = merged(ms, j0, per);
        double err = 0;
        for (std::int64_t j = j0; j < j0 + per; ++j) {
            const Moments& c = ms[std::size_t(j)];
            if (c.rel > 0) err += c.n / m.n * kernels::plain_errors(c).mean;
        }
        if (!(err <= scalar * std::abs(m.mean.hi)))
            for (std::int64_t j = j0; j < j0 + per; ++j)
                if (ms[std::size_t(j)].rel > 0) again.push_back(j);
    }
    kernels::exact_moments<T, false>(xp, nullptr, ls, ls.channels, threads, again, ms);
    // Per channel: y = a·(x − μ) + β with μ the set's mean, a = γ_c·invstd (double-double)
    const std::size_t C = std::size_t(l.channels);
    std::vector<double> k(5 * C, 0.0); // μ (hi, lo), a (hi, lo), β; 0 for the slow sets
    double *mu_hi = k.data(), *mu_lo = mu_hi + C, *a_hi = mu_lo + C, *a_lo = a_hi + C, *b = a_lo + C;
    std::vector<std::int64_t> slow; // first channels of the sets beyond the fast range
    const FastSets sets = fast_sets(ms, fast, l.channels / v.per, per, eps);
    for (std::int64_t j0 = 0; j0 < l.channels; j0 += v.per) {
        const std::int64_t s = (pc.q0 + j0) / v.per, first = j0 / v.per * per; // (of ls)
        if (!all_fast(fast, first, per)) {
            slow.push_back(j0);
            continue;
        }
        const Moments& m = sets.moments[std::size_t(j0 / v.per)];
        const dd inv = sets.inv[std::size_t(j0 / v.per)];
        if (mean) mean[s] = detail::to<T>(m.mean);
        if (invstd) invstd[s] = detail::to<T>(inv);
        for (std::int64_t j = j0; j < j0 + v.per; ++j) {
            const std::int64_t c = (pc.q0 + j) % v.C;
            const dd a = detail::mul(inv, param(gamma, c, 1.0));
            mu_hi[j] = m.mean.hi, mu_lo[j] = m.mean.lo, a_hi[j] = a.hi, a_lo[j] = a.lo, b[j] = param(beta, c, 0.0);
        }
    }
    const detail::GivenForward given{mu_hi, mu_lo, a_hi, a_lo, b, pc.output_values * std::int64_t(sizeof(T)), kStreamSets};
    const detail::ForwardState<T> pass(xp, l, given, threads);
    pass.apply(0, l.outer, y + pc.offset);
    for (const std::int64_t j0 : slow) { // y = γ_c·x̂ + β_c from the exact kernel's x̂
        const SlowSet set(v, xp, l, j0, eps);
        const std::int64_t s = (pc.q0 + j0) / v.per;
        if (mean) mean[s] = T(set.mean);
        if (invstd) invstd[s] = T(set.invstd);
        set.each(v, l, j0, [&](std::size_t i, std::int64_t off, std::int64_t j) {
            const std::int64_t c = (pc.q0 + j) % v.C;
            y[pc.offset + off] =
                detail::to<T>(detail::add(detail::mul(dd{set.xhat[i], 0}, param(gamma, c, 1.0)), param(beta, c, 0.0)));
        });
    }
}

} // namespace

template <class T>
void forward_sets(const T* x, const T* gamma, const T* beta, const NormProblem& p, double eps, T* y, T* mean,
                  T* invstd, int threads) {
    const View v(p);
    if (eps == 0) refuse_constant_sets(v, x);
    for_pieces(v, sizeof(T), threads, [&](const Piece& pc, int t) {
        forward_piece(v, x, gamma, beta, eps, pc, t, y, mean, invstd);
    });
}

template void forward_sets<float>(const float*, const float*, const float*, const NormProblem&, double, float*, float*,
                                  float*, int);
template void forward_sets<double>(const double*, const double*, const double*, const NormProblem&, double, double*,
                                   double*, double*, int);

} // namespace bnorm::family
