// Instance and group norm, backward, as a view over batch norm's engine (family_sets.hpp):
// the engine's certified pass A gives each channel's Σ dy and Σ dy·(x − μ_c) in
// double-double; per set they are recentred on the set's mean and weighted by γ_c,
//   S1 = Σ_c γ_c·Σ dy,   S2 = Σ_c γ_c·Σ dy·(x − μ),
// and every channel's dx = invstd·(γ_c·dy − S1/m − (x − μ)·invstd²·S2/m) goes to batch
// norm's pass B as a·(dy − B − (x − μ)·H) with a = γ_c·invstd, B = S1/(m·γ_c),
// H = invstd²·S2/(m·γ_c) (given_coefficients.cpp). dγ_c and dβ_c add the per-(sample,
// channel) sums over the samples in double-double and are rounded once. docs/derivation.md,
// "Instance and group norm", derives it and the checks below.
#include "family.hpp"
#include "family_sets.hpp"

#include "certificates.hpp"
#include "certified_moments.hpp"
#include "exact_set.hpp"
#include "lanes.hpp"
#include "pass_state.hpp"

#include <cstdint>
#include <vector>

namespace bnorm::family {
namespace {

using detail::add, detail::div, detail::mul, detail::neg, detail::sub;

/// What a set's dx needs to be within T's tolerance: each output within `output` of the
/// set's rms dx (batch norm's certificates, kFloat32Tolerance / kFloat64Tolerance), dγ and
/// dβ within `scalar` of their largest.
struct SetTolerance {
    double output, scalar;
};
template <class T> constexpr SetTolerance kSetTolerance =
    sizeof(T) == 4 ? SetTolerance{kernels::kFloat32Tolerance.output, kernels::kFloat32Tolerance.scalar}
                   : SetTolerance{kernels::kFloat64Tolerance.output, kernels::kFloat64Tolerance.scalar};

/// The relative bound of a channel's Σdy² from the fast kernels (plain or biased), the
/// largest of dy_squares_rel's.
constexpr double kDySquaresRel = std::max(kernels::kPlainGamma, kernels::gamma_of(kernels::kRunTile.terms + 2));

/// A set's sums for dx (names as in docs/derivation.md), and the bounds that decide
/// whether its channels' certified sums are still good enough added up.
struct SetSums {
    Moments m; // the set's merged moments: m.n, m.mean, m.m2
    dd inv;    // invstd
    dd S1, S2; // Σ_c γ_c·Σ dy,  Σ_c γ_c·Σ dy·(x − μ)
    dd H;      // invstd²·S2/m
    double err = 0;   // bound on dx's error from the sums' rounding, over invstd
    double rms_t = 0; // lower bound on the rms of t = dx/invstd over the set
    double terms = 0; // bound on |γ_c·dy| + |S1|/m + |H|·(|x − μ| + |μ|): pass B's rounding
    bool rounded = false; // some channel's sums are not error-free
};

/// The sums of the set of channels j0 .. j0 + per, whose merged moments are m and invstd inv.
template <class T>
SetSums set_sums(const View& v, const MomentsVector& ms, std::int64_t j0, std::int64_t q0, const T* gamma,
                 const Moments& m, dd inv) {
    SetSums r;
    r.m = m;
    r.inv = inv;
    const double n = r.m.n;
    dd A{}; // Σ_c γ_c²·Σ dy²
    double eS1 = 0, eS2 = 0, eA = 0, max_g = 0;
    for (std::int64_t j = j0; j < j0 + v.per; ++j) {
        const Moments& c = ms[std::size_t(j)];
        const double g = param(gamma, (q0 + j) % v.C, 1.0);
        const dd centred = add(c.sum_dyd, mul(sub(c.mean, r.m.mean), c.sum_dy)); // Σ dy·(x − μ)
        r.S1 = add(r.S1, mul(c.sum_dy, g)), r.S2 = add(r.S2, mul(centred, g));
        A = add(A, mul(mul(c.dy_sq, g), g));
        max_g = std::max(max_g, std::abs(g) * std::sqrt(c.dy_sq.hi));
        if (c.rel > 0) {
            const kernels::PlainErrors<double> e = kernels::plain_errors(c);
            r.rounded = true;
            eS1 += std::abs(g) * e.sum_dy;
            eS2 += std::abs(g) * (e.sum_dyd + std::abs(c.mean.hi - r.m.mean.hi) * e.sum_dy);
            eA += g * g * kDySquaresRel * c.dy_sq.hi;
        }
    }
    r.H = div(mul(mul(r.S2, r.inv), r.inv), n);
    // Σ t² = Σ (γ_c·dy − S1/m − (x − μ)·H)² = A − S1²/m − 2·H·S2 + H²·M2, in double-double
    // since its terms cancel down to dx's size; less a bound on its error
    const dd S1sq = div(mul(r.S1, r.S1), n), HS2 = mul(mul(r.H, r.S2), 2.0), H2M2 = mul(mul(r.H, r.H), r.m.m2);
    const double t2 = add(sub(sub(A, S1sq), HS2), H2M2).hi;
    const double h = std::abs(r.H.hi), max_d = std::sqrt(r.m.m2.hi); // |x − μ| ≤ √M2
    const double e_m2 = r.m.rel > 0 ? kernels::plain_errors(r.m).m2 : 0.0;
    const double e_mean = r.m.rel > 0 ? kernels::plain_errors(r.m).mean : 0.0;
    const double err_t2 = 2 * eA + 2 * std::abs(r.S1.hi) * eS1 / n + 4 * h * eS2 + h * h * e_m2 +
                          0x1p-98 * (A.hi + S1sq.hi + std::abs(HS2.hi) + H2M2.hi);
    r.rms_t = std::sqrt(std::max(0.0, t2 - err_t2) / n);
    const double r2 = r.inv.hi * r.inv.hi;
    r.err = eS1 / n + r2 * eS2 / n * max_d + h * e_mean;
    r.terms = max_g + std::abs(r.S1.hi) / n + h * (max_d + std::abs(r.m.mean.hi));
    return r;
}

/// Per (sample, channel) q: the share of dγ_c and dβ_c, with bounds on their errors.
struct Shares {
    std::vector<dd> dgamma, dbeta;
    std::vector<double> dgamma_err, dbeta_err;
    std::vector<dd> set_mean, set_inv; // per set, for the shares summed again
    std::vector<char> set_slow;        // per set: beyond the fast range (the exact kernel's shares)
};

/// Channel q's shares from its moments c and its set's mean and invstd.
void put_shares(Shares& s, std::size_t q, const Moments& c, dd mean, dd inv) {
    s.dbeta[q] = c.sum_dy;
    s.dgamma[q] = mul(add(c.sum_dyd, mul(sub(c.mean, mean), c.sum_dy)), inv);
    s.dbeta_err[q] = s.dgamma_err[q] = 0;
    if (c.rel > 0) {
        const kernels::PlainErrors<double> e = kernels::plain_errors(c);
        s.dbeta_err[q] = e.sum_dy;
        s.dgamma_err[q] = inv.hi * (e.sum_dyd + std::abs(c.mean.hi - mean.hi) * e.sum_dy) * (1 + 0x1p-40);
    }
}

/// The values of the set of piece channels j0 .. j0 + per, for the exact tier: x, dy and
/// dx̂ = γ_c·dy exactly as hi + lo, in the set's order, with their offsets in the piece.
struct SetValues {
    std::vector<double> x, dy, hi, lo;
    std::vector<std::int64_t> offsets;

    template <class T>
    SetValues(const View& v, const T* xp, const T* gp, const T* gamma, const Layout& l, std::int64_t j0,
              std::int64_t q0) {
        const std::size_t m = std::size_t(v.per * l.inner * l.outer);
        x.resize(m), dy.resize(m), hi.resize(m), lo.resize(m), offsets.resize(m);
        std::size_t i = 0;
        for_set_runs(v, l, j0, [&](std::int64_t off, std::int64_t count) { // runs of whole channels
            for (std::int64_t c = 0; c < count / l.inner; ++c) {
                const double gc = param(gamma, (q0 + j0 + c) % v.C, 1.0);
                for (std::int64_t k = off + c * l.inner, e = k + l.inner; k < e; ++k, ++i) {
                    const double g = double(gp[k]);
                    const dd dxhat = detail::two_prod(gc, g);
                    x[i] = double(xp[k]), dy[i] = g, hi[i] = dxhat.hi, lo[i] = dxhat.lo, offsets[i] = k;
                }
            }
        });
    }
    std::size_t size() const { return x.size(); }
    /// dx from the exact tier into out.
    template <class T> void put_dx(const detail::ExactSet& set, T* out) const {
        for (std::size_t i = 0; i < size(); ++i) out[offsets[i]] = set.zero() ? T(0) : detail::to<T>(set.dx(i));
    }
};

/// The set of piece channels j0 .. j0 + per beyond the fast range, by the exact tier: dx,
/// and the exact shares of dγ and dβ. False, with nothing written, when a value is not
/// finite.
template <class T>
bool exact_set(const View& v, const T* xp, const T* gp, const T* gamma, const Layout& l, std::int64_t j0,
               std::int64_t q0, double eps, T* out, Shares* shares) {
    const SetValues sv(v, xp, gp, gamma, l, j0, q0);
    detail::ExactSet set(sv.x.data(), sv.hi.data(), sv.lo.data(), sv.size(), eps, true);
    if (!set.usable()) return false;
    sv.put_dx(set, out);
    if (!shares) return true;
    // each channel's values for its shares (the set's own when it is one channel)
    const std::size_t per_channel = std::size_t(l.inner * l.outer);
    std::vector<double> xc, dyc;
    for (std::int64_t j = 0; j < v.per; ++j) {
        const double *xj = sv.x.data(), *gj = sv.dy.data();
        if (v.per > 1) {
            xc.clear(), dyc.clear();
            for (std::size_t i = 0; i < sv.size(); ++i)
                if (sv.offsets[i] / l.inner % l.channels == j0 + j) xc.push_back(sv.x[i]), dyc.push_back(sv.dy[i]);
            xj = xc.data(), gj = dyc.data();
        }
        const std::size_t q = std::size_t(q0 + j0 + j);
        shares->dbeta[q] = detail::sum_exactly(gj, per_channel);
        shares->dgamma[q] = set.share(xj, gj, per_channel);
        shares->dbeta_err[q] = shares->dgamma_err[q] = 0;
    }
    return true;
}

/// dx of a set in the fast range whose dx is below what double-double sums and pass B keep
/// of its terms (dy nearly affine in x, or exactly: a constant dy), again by the exact
/// tier. Its shares stay those of its moments (error-free, not cancelling), but for a set
/// of one channel whose dx̂ is one constant c and γ_c ≠ 0: its share of dγ, c·Σx̂/γ_c, is
/// 0 exactly.
template <class T>
void exact_dx(const View& v, const T* xp, const T* gp, const T* gamma, const Layout& l, std::int64_t j0,
              std::int64_t q0, double eps, T* out, Shares* shares) {
    // dx̂ one constant (a sum loss, the commonest): dx = 0, without gathering the set
    dd first{NAN, 0};
    bool constant = true;
    for_set_runs(v, l, j0, [&](std::int64_t off, std::int64_t count) {
        for (std::int64_t c = 0; c < count / l.inner && constant; ++c) {
            const double gc = param(gamma, (q0 + j0 + c) % v.C, 1.0);
            if (std::isnan(first.hi)) first = detail::two_prod(gc, double(gp[off + c * l.inner]));
            for (std::int64_t k = off + c * l.inner, e = k + l.inner; k < e && constant; ++k) {
                const dd g = detail::two_prod(gc, double(gp[k]));
                constant = g.hi == first.hi && g.lo == first.lo;
            }
        }
    });
    if (constant) {
        for_set_runs(v, l, j0, [&](std::int64_t off, std::int64_t count) { std::fill(out + off, out + off + count, T(0)); });
        if (shares && v.per == 1 && param(gamma, (q0 + j0) % v.C, 1.0) != 0)
            shares->dgamma[std::size_t(q0 + j0)] = dd{}, shares->dgamma_err[std::size_t(q0 + j0)] = 0;
        return;
    }
    const SetValues sv(v, xp, gp, gamma, l, j0, q0);
    const detail::ExactSet set(sv.x.data(), sv.hi.data(), sv.lo.data(), sv.size(), eps, true);
    if (!set.usable()) return; // (finite sets in range are usable)
    sv.put_dx(set, out);
    if (shares && set.zero() && v.per == 1 && param(gamma, (q0 + j0) % v.C, 1.0) != 0) {
        const std::size_t q = std::size_t(q0 + j0);
        shares->dgamma[q] = dd{}, shares->dgamma_err[q] = 0;
    }
}

template <class T>
void backward_piece(const View& v, const T* x, const T* gamma, const T* dy, double eps, const Piece& pc, int threads,
                    T* dx, Shares* shares) {
    const Layout& l = pc.l;
    const T *xp = x + pc.offset, *gp = dy + pc.offset;
    constexpr SetTolerance tol = kSetTolerance<T>;
    std::vector<kernels::Certified> how;
    MomentsVector ms = kernels::certified_moments<T, true>(xp, gp, l, l.channels, eps, threads, how);
    const std::vector<char> fast = kernels::in_fast_range(ms, sizeof(T) == 8);
    // sets whose channels' certified sums, added, are not good enough for dx: error-free,
    // and their sums taken again; the others' sums kept for pass B's coefficients
    const std::int64_t sets = l.channels / v.per;
    const FastSets fs = fast_sets(ms, fast, sets, v.per, eps);
    std::vector<SetSums> sums(static_cast<std::size_t>(sets));
    std::vector<std::int64_t> again;
    for (std::int64_t j0 = 0; j0 < l.channels; j0 += v.per)
        if (all_fast(fast, j0, v.per)) {
            const std::size_t s = std::size_t(j0 / v.per);
            SetSums& r = sums[s];
            r = set_sums(v, ms, j0, pc.q0, gamma, fs.moments[s], fs.inv[s]);
            if (r.rounded && !(r.err <= tol.output * r.rms_t))
                for (std::int64_t j = j0; j < j0 + v.per; ++j) again.push_back(j);
        }
    kernels::exact_moments<T, true>(xp, gp, l, l.channels, threads, again, ms);
    for (std::size_t i = 0; i < again.size(); i += std::size_t(v.per)) {
        const std::int64_t j0 = again[i];
        const Moments m = merged(ms, j0, v.per);
        sums[std::size_t(j0 / v.per)] = set_sums(v, ms, j0, pc.q0, gamma, m, inverse_std(m, eps));
    }

    const std::size_t C = std::size_t(l.channels);
    std::vector<double> k(8 * C, 0.0); // μ, a, B, H (hi, lo each); 0 for the channels done apart
    double *mu_hi = k.data(), *mu_lo = mu_hi + C, *a_hi = mu_lo + C, *a_lo = a_hi + C, *B_hi = a_lo + C,
           *B_lo = B_hi + C, *H_hi = B_lo + C, *H_lo = H_hi + C;
    std::vector<char> careful(C, 0);
    struct Apart { // a channel pass B's form cannot take (γ_c = 0): dx = a·dy + β' + a'·(x − μ)
        std::int64_t j;
        dd a, beta, slope, mean;
    };
    std::vector<Apart> apart;
    // first channels of the sets beyond the fast range (the exact tier for all), and of
    // those whose dx is below what double-double sums and pass B keep of its terms (the
    // exact tier for dx, after pass B)
    std::vector<std::int64_t> slow, cancelling;
    for (std::int64_t j0 = 0; j0 < l.channels; j0 += v.per) {
        const std::int64_t s = (pc.q0 + j0) / v.per;
        const SetSums& r = sums[std::size_t(j0 / v.per)];
        const bool beyond = !all_fast(fast, j0, v.per);
        if (shares) shares->set_slow[std::size_t(s)] = beyond;
        if (beyond) {
            slow.push_back(j0);
            continue;
        }
        if (!(0x1p-96 * r.terms <= tol.output * r.rms_t)) cancelling.push_back(j0);
        // float32 pass B in double keeps ~2^-53 of its terms: where dx is a tiny fraction
        // of them (dy nearly linear in x), double-double
        const bool cancels = 4 * 0x1p-53 * r.terms > tol.output * r.rms_t;
        const dd B = div(r.S1, r.m.n); // before the division by γ_c
        if (shares) shares->set_mean[std::size_t(s)] = r.m.mean, shares->set_inv[std::size_t(s)] = r.inv;
        for (std::int64_t j = j0; j < j0 + v.per; ++j) {
            const double g = param(gamma, (pc.q0 + j) % v.C, 1.0);
            const dd a = mul(r.inv, g);
            if (shares) put_shares(*shares, std::size_t(pc.q0 + j), ms[std::size_t(j)], r.m.mean, r.inv);
            const double ag = std::abs(g);
            const dd Bj = div(B, g), Hj = div(r.H, g);
            if (ag >= 0x1p-500 && ag <= 0x1p500 && std::isfinite(Bj.hi) && std::isfinite(Hj.hi)) {
                mu_hi[j] = r.m.mean.hi, mu_lo[j] = r.m.mean.lo, a_hi[j] = a.hi, a_lo[j] = a.lo;
                B_hi[j] = Bj.hi, B_lo[j] = Bj.lo, H_hi[j] = Hj.hi, H_lo[j] = Hj.lo;
                careful[std::size_t(j)] = cancels;
            } else
                apart.push_back({j, a, neg(mul(r.inv, B)), neg(mul(r.inv, r.H)), r.m.mean});
        }
    }
    const detail::BackwardState<T> pass(xp, gp, l,
                                        detail::GivenBackward{mu_hi, mu_lo, a_hi, a_lo, B_hi, B_lo, H_hi, H_lo,
                                                              careful.data(), pc.output_values * std::int64_t(sizeof(T)), kStreamSets},
                                        threads);
    T* out = dx + pc.offset;
    pass.apply(0, l.outer, out);
    for (const Apart& ch : apart) // x and dy are (outer, C, inner)
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t i = (o * l.channels + ch.j) * l.inner, e = i + l.inner; i < e; ++i) {
                const dd d = sub(dd{double(xp[i]), 0}, ch.mean);
                out[i] = detail::to<T>(add(add(mul(ch.a, double(gp[i])), ch.beta), mul(d, ch.slope)));
            }
    for (const std::int64_t j0 : cancelling) exact_dx(v, xp, gp, gamma, l, j0, pc.q0, eps, out, shares);
    for (const std::int64_t j0 : slow) {
        if (exact_set(v, xp, gp, gamma, l, j0, pc.q0, eps, out, shares)) continue;
        // a value not finite: dx of the set with dx̂ = γ_c·dy by the double-double kernel
        const SlowSet set(v, xp, l, j0, eps);
        const std::size_t m = set.x.size();
        // dx is linear in dx̂: dx̂ = hi + lo exactly (TwoProd; lo = 0 for float32 data),
        // the exact kernel on each, the two results added, so that no rounding of γ_c·dy
        // reaches a dx that cancels
        std::vector<double> hi(m), lo(m), dx_hi(m), dx_lo(m);
        std::vector<dd> sum_dy(std::size_t(v.per)), sum_dy_xhat(std::size_t(v.per));
        bool any_lo = false;
        set.each(v, l, j0, [&](std::size_t i, std::int64_t off, std::int64_t j) {
            const double g = double(gp[off]);
            const dd dxhat = detail::two_prod(param(gamma, (pc.q0 + j) % v.C, 1.0), g);
            hi[i] = dxhat.hi, lo[i] = std::isfinite(dxhat.hi) ? dxhat.lo : 0.0, any_lo = any_lo || lo[i] != 0;
            sum_dy[std::size_t(j - j0)] = add(sum_dy[std::size_t(j - j0)], g);
            sum_dy_xhat[std::size_t(j - j0)] = add(sum_dy_xhat[std::size_t(j - j0)], mul(dd{set.xhat[i], 0}, g));
        });
        const Layout one{1, 1, std::int64_t(m)};
        detail::backward_exact<double>(set.x.data(), nullptr, hi.data(), one, eps, dx_hi.data(), nullptr, nullptr);
        if (any_lo) detail::backward_exact<double>(set.x.data(), nullptr, lo.data(), one, eps, dx_lo.data(), nullptr, nullptr);
        set.each(v, l, j0, [&](std::size_t i, std::int64_t off, std::int64_t) {
            out[off] = std::isfinite(dx_hi[i]) ? detail::to<T>(detail::two_sum(dx_hi[i], dx_lo[i])) : T(dx_hi[i]);
        });
        if (shares)
            for (std::int64_t j = j0; j < j0 + v.per; ++j) {
                const std::size_t q = std::size_t(pc.q0 + j);
                shares->dbeta[q] = sum_dy[std::size_t(j - j0)], shares->dgamma[q] = sum_dy_xhat[std::size_t(j - j0)];
                shares->dbeta_err[q] = shares->dgamma_err[q] = 0;
            }
    }
}

/// dγ_c = Σ_n share, dβ_c likewise, in double-double in sample order; the channels whose
/// bound (the shares' bounds added) is not within tol.scalar of the largest output are
/// summed again error-free first: the samples' shares may cancel beyond each one's
/// certificate.
template <class T>
void reduce_shares(const View& v, const T* x, const T* dy, Shares& s, T* dgamma, T* dbeta, int threads) {
    const std::size_t C = std::size_t(v.C);
    const auto total = [&](std::vector<dd>& part, std::vector<double>& err, std::vector<dd>& out,
                           std::vector<double>& bound) {
        out.assign(C, dd{}), bound.assign(C, 0);
        for (std::int64_t n = 0; n < v.N; ++n)
            for (std::size_t c = 0; c < C; ++c)
                out[c] = add(out[c], part[std::size_t(n) * C + c]), bound[c] += err[std::size_t(n) * C + c];
    };
    std::vector<dd> g, b;
    std::vector<double> ge, be;
    total(s.dgamma, s.dgamma_err, g, ge), total(s.dbeta, s.dbeta_err, b, be);
    double gmax = 0, bmax = 0;
    for (std::size_t c = 0; c < C; ++c) gmax = std::max(gmax, std::abs(g[c].hi)), bmax = std::max(bmax, std::abs(b[c].hi));
    constexpr double tol = kSetTolerance<T>.scalar;
    std::vector<std::int64_t> again; // channels c
    for (std::size_t c = 0; c < C; ++c)
        if ((dgamma && !(ge[c] <= tol * gmax)) || (dbeta && !(be[c] <= tol * bmax))) again.push_back(std::int64_t(c));
    if (!again.empty()) {
        // per sample (P > 1), or every sample at once (P = 1: the layout (1, N·C, inner))
        const std::int64_t pieces = v.P == 1 ? 1 : v.N, channels = v.P == 1 ? v.N * v.C : v.C;
        const Layout l{v.P, channels, v.inner};
        for (std::int64_t piece = 0; piece < pieces; ++piece) {
            const std::int64_t offset = piece * v.P * v.C * v.inner, q0 = piece * v.C;
            std::vector<std::int64_t> todo;
            for (std::int64_t q = q0; q < q0 + channels; ++q)
                if (std::binary_search(again.begin(), again.end(), q % v.C) && !s.set_slow[std::size_t(q / v.per)])
                    todo.push_back(q - q0);
            MomentsVector ms(static_cast<std::size_t>(channels));
            kernels::exact_moments<T, true>(x + offset, dy + offset, l, channels, threads, todo, ms);
            for (const std::int64_t j : todo) {
                const std::size_t q = std::size_t(q0 + j), set = q / std::size_t(v.per);
                put_shares(s, q, ms[std::size_t(j)], s.set_mean[set], s.set_inv[set]);
            }
        }
        total(s.dgamma, s.dgamma_err, g, ge), total(s.dbeta, s.dbeta_err, b, be);
    }
    for (std::size_t c = 0; c < C; ++c) {
        if (dgamma) dgamma[c] = detail::to<T>(g[c]);
        if (dbeta) dbeta[c] = detail::to<T>(b[c]);
    }
}

} // namespace

template <class T>
void backward_sets(const T* x, const T* gamma, const T* dy, const NormProblem& p, double eps, T* dx, T* dgamma,
                   T* dbeta, int threads) {
    const View v(p);
    if (eps == 0) refuse_constant_sets(v, x);
    Shares shares;
    const bool want = dgamma || dbeta;
    if (want) {
        const std::size_t q = std::size_t(v.N * v.C), sets = std::size_t(v.N * v.per_sample);
        shares.dgamma.assign(q, dd{}), shares.dbeta.assign(q, dd{});
        shares.dgamma_err.assign(q, 0), shares.dbeta_err.assign(q, 0);
        shares.set_mean.assign(sets, dd{}), shares.set_inv.assign(sets, dd{}), shares.set_slow.assign(sets, 0);
    }
    for_pieces(v, 2 * sizeof(T), threads, [&](const Piece& pc, int t) {
        backward_piece(v, x, gamma, dy, eps, pc, t, dx, want ? &shares : nullptr);
    });
    if (want) reduce_shares(v, x, dy, shares, dgamma, dbeta, threads);
}

template void backward_sets<float>(const float*, const float*, const float*, const NormProblem&, double, float*,
                                   float*, float*, int);
template void backward_sets<double>(const double*, const double*, const double*, const NormProblem&, double, double*,
                                    double*, double*, int);

} // namespace bnorm::family
