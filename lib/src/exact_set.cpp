// ExactSet: one set's dx from exact sums, double-double where a bound shows it is enough,
// exact expansions where it is not (exact_set.hpp has the formulas).
#include "exact_set.hpp"

#include <algorithm>
#include <cmath>

namespace bnorm::detail {
namespace {

namespace ex = expansion;
constexpr double kU2 = 0x1p-106; // double-double's unit roundoff

/// x / y in double-double: two correction steps, to a few 2^-106 of the quotient.
dd quotient(dd x, dd y) {
    const double q1 = x.hi / y.hi;
    dd r = sub(x, mul(y, q1));
    const double q2 = r.hi / y.hi;
    r = sub(r, mul(y, q2));
    const double q3 = r.hi / y.hi;
    return add(fast_two_sum(q1, q2), q3);
}

/// The exponent e with |v| < 2^e for v ≠ 0 (0 for 0).
int above(double v) { return v == 0 ? 0 : std::ilogb(v) + 1; }

/// v rounded to double-double, and a bound on that rounding: 0 when it is exact.
dd rounded(const ex::Expansion& v, double& err) {
    const dd r = ex::to_dd(v);
    err = v.size() <= 2 ? 0.0 : 4 * kU2 * std::abs(r.hi);
    return r;
}

/// a·b·2^k in double-double, both factors brought near 1 first, so that nothing under- or
/// overflows unless the result itself does (dx can be 1e-320 of its scaled terms).
dd product_scaled(dd a, dd b, int k) {
    if (a.hi == 0 || b.hi == 0) return {};
    const int ea = std::ilogb(a.hi), eb = std::ilogb(b.hi);
    return ldexp(mul(ldexp(a, -ea), ldexp(b, -eb)), ea + eb + k);
}

/// a·b exactly, as an expansion.
ex::Expansion times(double a, double b) {
    const dd p = two_prod(a, b);
    ex::Expansion e;
    if (p.lo != 0) e.push_back(p.lo);
    if (p.hi != 0) e.push_back(p.hi);
    return e;
}

} // namespace

ExactSet::ExactSet(const double* x, const double* g_hi, const double* g_lo, std::size_t m, double eps, bool centred)
    : x_(x), g_hi_(g_hi), g_lo_(g_lo), m_(double(m)), centred_(centred) {
    double max_x = 0, max_g = 0;
    for (std::size_t i = 0; i < m; ++i) {
        const double a = std::abs(x[i]), b = std::abs(g_hi[i]);
        if (!std::isfinite(a) || !std::isfinite(b) || (g_lo && !std::isfinite(g_lo[i]))) return;
        max_x = std::max(max_x, a), max_g = std::max(max_g, b);
    }
    // |x|·2^-ex < 1 and eps·4^-ex < 4, |g|·2^-eg < 1: squares and products stay far from
    // overflow, and from underflow but for terms far below the set's largest. An eps far
    // below x² would underflow there (and a set of two has dx ∝ eps): ex is then lowered
    // until eps·4^-ex ≥ 2^-1000, so far as |x|·2^-ex stays below 2^400.
    ex_ = above(max_x);
    if (eps > 0) {
        const int le = std::ilogb(eps);
        ex_ = std::max(ex_, (le + 2) >> 1);
        ex_ = std::min(ex_, std::max((le + 1000) >> 1, above(max_x) - 400));
    }
    eg_ = above(max_g);
    sx_ = std::ldexp(1.0, -ex_), sg_ = std::ldexp(1.0, -eg_);
    eps_s_ = std::ldexp(eps, -2 * ex_);
    const int shift = eg_ - ex_;
    scale_ = shift >= -1000 && shift <= 1000 ? pow2(shift) : 0.0;

    // A constant dx̂ (a sum loss) with the mean subtracted: every A_i and N are 0, so dx is
    // 0 exactly, and the sums wait for share(), the only output that needs them
    bool constant = centred;
    for (std::size_t i = 1; i < m && constant; ++i)
        constant = g_hi[i] == g_hi[0] && (!g_lo || g_lo[i] == g_lo[0]);
    if (constant) {
        bool flat = eps == 0; // var + eps = 0: not usable, the caller refuses it
        for (std::size_t i = 1; i < m && flat; ++i) flat = x[i] == x[0];
        const ex::Expansion c = ex::sum(times(m_, g_hi[0] * sg_), times(m_, g_lo ? g_lo[0] * sg_ : 0.0));
        S1d_ = ex::to_dd(c), zero_ = true, usable_ = !flat;
        return;
    }
    sum_all();
}

void ExactSet::sum_all() {
    const std::size_t m = std::size_t(m_);
    const double k = centred_ ? m_ : 1.0;
    LongSum s1, sx, p, q;
    for (std::size_t i = 0; i < m; ++i) {
        const double xs = x_[i] * sx_, gh = g_hi_[i] * sg_, gl = g_lo_ ? g_lo_[i] * sg_ : 0.0;
        const dd pg = two_prod(gh, xs), pl = two_prod(gl, xs), xx = two_prod(xs, xs);
        s1.add(gh), s1.add(gl), sx.add(xs);
        p.add(pg.hi), p.add(pg.lo), p.add(pl.hi), p.add(pl.lo);
        q.add(xx.hi), q.add(xx.lo);
    }
    S1_ = ex::compressed(s1.expansion()), Sx_ = ex::compressed(sx.expansion());
    const ex::Expansion P = p.expansion(), Q = q.expansion();
    const ex::Expansion m_eps = ex::scaled(times(m_, centred_ ? m_ : 1.0), eps_s_); // k²·eps (RMS: m·eps)
    if (centred_) {
        N_ = ex::compressed(ex::sum(ex::scaled(P, k), ex::negated(ex::product(S1_, Sx_))));
        D_ = ex::compressed(ex::sum(ex::sum(ex::scaled(Q, k), ex::negated(ex::product(Sx_, Sx_))), m_eps));
    } else {
        N_ = ex::compressed(P);
        D_ = ex::compressed(ex::sum(Q, m_eps));
    }
    double err_N = 0, err_D = 0;
    S1d_ = rounded(S1_, err_S1_), Sxd_ = rounded(Sx_, err_Sx_);
    const dd Nd = rounded(N_, err_N);
    Dd_ = rounded(D_, err_D);
    summed_ = true;
    if (!(Dd_.hi > 0) || !std::isfinite(Dd_.hi)) return;
    R_ = quotient(Nd, Dd_);
    err_R_ = N_.empty() ? 0.0 : std::abs(R_.hi) * (err_N / std::abs(Nd.hi) + err_D / Dd_.hi + 8 * kU2);
    over_ = centred_ ? rsqrt(Dd_) : rsqrt(div(Dd_, m_));
    usable_ = std::isfinite(over_.hi) && std::isfinite(R_.hi);
}

/// A_i − b_i·R in double-double, and a bound on its error (the inputs' roundings and
/// each double-double step's, JMP's bounds with margin).
dd ExactSet::cheap(std::size_t i, double& bound) const {
    const double xs = x_[i] * sx_, gh = g_hi_[i] * sg_, gl = g_lo_ ? g_lo_[i] * sg_ : 0.0;
    const double k = centred_ ? m_ : 1.0;
    dd A = two_prod(k, gh), b = two_prod(k, xs);
    double terms = 0, err = 0;
    if (gl != 0) terms += std::abs(A.hi), A = add(A, two_prod(k, gl));
    if (centred_) A = sub(A, S1d_), b = sub(b, Sxd_), err += err_S1_ + std::abs(R_.hi) * err_Sx_;
    const dd bR = mul(b, R_);
    const dd t = sub(A, bR);
    err += std::abs(b.hi) * err_R_;
    terms += std::abs(A.hi) + std::abs(b.hi) * std::abs(R_.hi) * 2;
    bound = (err + 16 * kU2 * terms) * (1 + 0x1p-40);
    return t;
}

/// dx_i from A_i·D − b_i·N taken exactly, over D, times invstd/k.
dd ExactSet::exact(std::size_t i) const {
    const double xs = x_[i] * sx_, gh = g_hi_[i] * sg_, gl = g_lo_ ? g_lo_[i] * sg_ : 0.0;
    const double k = centred_ ? m_ : 1.0;
    ex::Expansion A = ex::sum(times(k, gh), times(k, gl)), b = times(k, xs);
    if (centred_) A = ex::sum(std::move(A), ex::negated(S1_)), b = ex::sum(std::move(b), ex::negated(Sx_));
    const ex::Expansion E = ex::compressed(ex::sum(ex::product(A, D_), ex::negated(ex::product(b, N_))));
    if (E.empty()) return {};
    const dd e = ex::to_dd(E); // E/D near 1 first: its exponent kept apart
    const int eE = std::ilogb(e.hi), eD = std::ilogb(Dd_.hi);
    return product_scaled(quotient(ldexp(e, -eE), ldexp(Dd_, -eD)), over_, eE - eD + eg_ - ex_);
}

dd ExactSet::dx(std::size_t i) const {
    if (zero_) return {};
    double bound = 0;
    const dd t = cheap(i, bound);
    if (!(bound <= 0x1p-60 * std::abs(t.hi))) return exact(i);
    const dd v = mul(t, over_);
    // times 2^(eg − ex) by a product where that is a normal double and v is far from
    // underflow (std::ldexp is a libm call)
    if (scale_ != 0 && std::abs(v.hi) >= 0x1p-960) return {v.hi * scale_, v.lo * scale_};
    return product_scaled(t, over_, eg_ - ex_);
}

dd ExactSet::share(const double* x, const double* dy, std::size_t n) {
    // the whole set with one constant dy: dy·x̂ sums to c·Σx̂ = 0
    bool constant = zero_ && double(n) == m_;
    for (std::size_t i = 1; i < n && constant; ++i) constant = dy[i] == dy[0];
    if (constant && std::isfinite(dy[0])) return {};
    if (!summed_) sum_all();
    double max_g = 0;
    for (std::size_t i = 0; i < n; ++i) max_g = std::max(max_g, std::abs(dy[i]));
    const int ed = above(max_g);
    const double sd = std::ldexp(1.0, -ed);
    LongSum s1, p;
    for (std::size_t i = 0; i < n; ++i) {
        const double g = dy[i] * sd;
        const dd pg = two_prod(g, x[i] * sx_);
        s1.add(g), p.add(pg.hi), p.add(pg.lo);
    }
    // invstd·(m·Σdy·x − Σdy·Σx)/m over these values = (m·Σdy·x − Σdy·Σx)/√D, scaled back
    const ex::Expansion Nc =
        ex::compressed(ex::sum(ex::scaled(p.expansion(), m_), ex::negated(ex::product(s1.expansion(), Sx_))));
    return ldexp(mul(ex::to_dd(Nc), over_), ed);
}

} // namespace bnorm::detail
