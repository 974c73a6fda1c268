// Layer and RMS norm (family.hpp) on the batch-norm engine's seams. Forward: the rows of
// x are the channels of the engine's certified pass A (Layout(1, rows, D): each row one
// channel of `inner` = D values), then y by the row kernels of pass_b/family_rows.hpp.
// Backward: four rows' sums (float32 layer: plain, judged by the engine's backward
// certificate; else Sum2), then their dx and terms of dγ, dβ, so that the second pass
// over a row finds it in cache. float32 adds the columns' terms plainly under a bound
// checked at the end (and sums them again by TwoProd when it fails); float64 adds them
// by TwoProd and TwoSum. Rows beyond the fast range (non-finite values, float64
// magnitudes outside [2^-400, 2^480]) are scaled by a power of two and computed by the
// same kernels in double.
//
// Threads take whole chunks, and a chunk's rows depend on their own values only, so y
// and dx do not depend on the thread count; dγ and dβ are sums over the rows, added in
// fixed bands of chunks and the bands merged in order.
#include "family.hpp"

#include "bnorm/error.hpp"
#include "certificates.hpp"
#include "certified_moments.hpp"
#include "ddouble.hpp"
#include "exact_set.hpp"
#include "lanes.hpp"
#include "parallel.hpp"
#include "pass_b/family_rows.hpp"
#include "pass_b/streaming.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace bnorm::family {
namespace {

using namespace kernels;
using detail::add, detail::div, detail::mul, detail::sub;

constexpr std::int64_t kChunkValues = 32768;    // a chunk of rows: pass A, then pass B while it is in L2
constexpr std::int64_t kParallelValues = 65536; // smaller tensors run on the calling thread (as batch norm)
constexpr std::int64_t kMaxBands = 64;          // dγ, dβ: at most this many partial sums per column
constexpr std::int64_t kBandValues = 1 << 20;   // ... and at most this many partial values (8 MB) in all
// float32 dx is streamed from 16 MiB on every machine: where batch norm's outputs stay in
// a large cache (stream_threshold), layer norm's backward in ordinary stores took 1.09 to
// 1.19 of its streamed time (Zen 5 guest, docs/performance.md)
constexpr std::int64_t kStreamRows = 16 << 20;

/// The rows of a problem, cut into chunks by the shape alone.
struct Rows {
    std::int64_t R, D, per_chunk, chunks;
    explicit Rows(const NormProblem& p) : R(p.sets), D(p.per_set) {
        per_chunk = std::max<std::int64_t>(1, kChunkValues / D);
        chunks = (R + per_chunk - 1) / per_chunk;
    }
    std::int64_t first(std::int64_t chunk) const { return chunk * per_chunk; }
    std::int64_t end(std::int64_t chunk) const { return std::min(R, (chunk + 1) * per_chunk); }
};

int threads_for(const NormProblem& p, int threads) {
    return p.size() < kParallelValues ? 1 : detail::resolve_threads(threads);
}

/// Row r as its index of shape[:axis], e.g. "(1, 2)".
std::string row_index(const NormProblem& p, std::int64_t r) {
    std::vector<std::int64_t> idx(std::size_t(p.axis));
    for (int a = p.axis - 1; a >= 0; --a) idx[std::size_t(a)] = r % p.shape[std::size_t(a)], r /= p.shape[std::size_t(a)];
    return fmt::format("({})", fmt::join(idx, ", "));
}

/// With eps = 0, var + eps is 0 exactly for a constant row (layer) or a row of zeros
/// (RMS): refused, naming the first such row, before anything is written.
template <class T> void refuse_zero_rows(const T* x, const NormProblem& p, double eps, int threads) {
    if (eps != 0) return;
    const bool rms = p.norm == Norm::rms;
    const std::int64_t D = p.per_set;
    std::atomic<std::int64_t> first{p.sets};
    detail::parallel_for(p.sets, threads, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1 && r < first.load(); ++r) {
            const T* v = x + r * D;
            const T k = rms ? T(0) : v[0];
            bool constant = std::isfinite(double(k));
            for (std::int64_t i = 0; i < D && constant; ++i) constant = v[i] == k;
            if (constant) {
                std::int64_t seen = first.load();
                while (r < seen && !first.compare_exchange_weak(seen, r)) {}
                break;
            }
        }
    });
    const std::int64_t r = first.load();
    if (r == p.sets) return;
    const std::string which = p.axis == 0 ? "x" : fmt::format("row {} of x (index {} of its first {} axes)", r,
                                                              row_index(p, r), p.axis);
    throw InputError(rms ? fmt::format("--norm rms: {} is all zeros and eps = 0: invstd = 1/sqrt(mean(x²) + eps) is "
                                       "infinite (use eps > 0)",
                                       which)
                         : fmt::format("--norm layer: {} is constant and eps = 0: its variance is 0 and invstd = "
                                       "1/sqrt(var + eps) is infinite (use eps > 0)",
                                       which));
}

/// μ and the variance (layer: M2/D) or mean(x²) (RMS, K = 0) from a row's sums around K.
struct Centred {
    dd mean, var;
};
Centred from_sums(const RowSums& s, double K, std::int64_t D, bool rms) {
    const double n = double(D);
    if (rms) return {dd{}, div(s.dd2, n)};
    const dd shift = div(s.d, n); // μ − K; M2 = Σ(x − K)² − (μ − K)·Σ(x − K)
    return {add(shift, K), div(sub(s.dd2, mul(s.d, shift)), n)};
}

/// The coefficients of dx from a row's sums around K (backward_rows' derivation:
/// B = Σdx̂/D, H = invstd²·Σdx̂·(x − μ)/D, Σdx̂·(x − μ) = Σdx̂·(x − K) − (μ − K)·Σdx̂).
RowGradient gradient_of(const RowSums& s, double K, std::int64_t D, double eps, bool rms) {
    const double n = double(D);
    const Centred c = from_sums(s, K, D, rms);
    const dd inv = detail::rsqrt(add(c.var, eps));
    const dd gd = rms ? s.gd : sub(s.gd, mul(s.g, div(s.d, n)));
    return {c.mean, inv, rms ? dd{} : div(s.g, n), div(mul(mul(gd, inv), inv), n)};
}

// ---- rows beyond the fast range -----------------------------------------------------------
//
// Layer and RMS norm are invariant under x → 2^-e·x, eps → 2^-2e·eps, except that mean
// scales by 2^-e and invstd by 2^e: such a row is scaled to magnitudes near 1 (and dy,
// whose scale dx carries, likewise), computed in double with the kernels above, and its
// outputs scaled back. e is bounded below so that 2^-2e·eps stays finite; a non-finite
// row is not scaled and its NaN propagates through the same arithmetic.

/// e with the row's largest magnitude in [2^(e−1), 2^e), bounded so that eps·2^-2e ≤
/// 2^1000; 0 for a row of zeros or a non-finite one.
int scale_of(double max_abs, double eps) {
    if (!(max_abs > 0) || !std::isfinite(max_abs)) return 0;
    int e = 0;
    std::frexp(max_abs, &e);
    if (eps > 0) {
        int ee = 0;
        std::frexp(eps, &ee);
        e = std::max(e, (ee - 1000) / 2 + 1);
    }
    return e;
}

template <class T> double largest(const T* v, std::int64_t n) {
    double m = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const double a = std::abs(double(v[i]));
        if (!(a <= m)) m = a; // NaN taken
    }
    return m;
}

/// Scratch rows in double for the fallback: x, dy, γ, β and the output, D each.
struct Scratch {
    std::vector<double> v;
    std::vector<float> dx32;
    std::vector<double> dx64;
    double* rows(std::int64_t D) {
        v.resize(std::size_t(5 * D));
        return v.data();
    }
    /// A row of dx to be discarded (the columns' pass computes the fallback's dx again).
    template <class T> T* dx_row(std::int64_t D) {
        if constexpr (sizeof(T) == 4) return dx32.resize(std::size_t(D)), dx32.data();
        else return dx64.resize(std::size_t(D)), dx64.data();
    }
};

/// v·2^-e into out (exact unless it leaves the normal range), null for null v.
template <class T> const double* scaled(const T* v, std::int64_t n, int e, double* out) {
    if (!v) return nullptr;
    for (std::int64_t i = 0; i < n; ++i) out[i] = std::ldexp(double(v[i]), -e);
    return out;
}

/// The sums of a scaled row around its mean (a first pass around xs[0] finds it).
RowSums centred_sums(const double* xs, const double* gs, const double* gamma, std::int64_t D, bool rms, double& K) {
    K = 0;
    if (!rms) {
        const RowSums first = row_sums<double>(xs, nullptr, nullptr, D, xs[0]);
        K = xs[0] + first.d.hi / double(D);
        if (!std::isfinite(K)) K = xs[0];
    }
    return row_sums<double>(xs, gs, gamma, D, K);
}

/// y, mean and invstd of a row beyond the fast range.
template <class T>
void forward_fallback(const T* x, const T* gamma, const T* beta, std::int64_t D, double eps, bool rms, Scratch& s,
                      T* y, T* mean, T* invstd) {
    double* buf = s.rows(D);
    const int e = scale_of(largest(x, D), eps);
    const double eps_s = std::ldexp(eps, -2 * e);
    const double* xs = scaled(x, D, e, buf);
    double K;
    const RowSums sums = centred_sums(xs, nullptr, nullptr, D, rms, K);
    Centred c = from_sums(sums, K, D, rms);
    // the mean of a finite row exactly: the sums lose values that cancel beyond ~2^-100 of
    // the largest (1e200, −1e200, 1); from x itself, whose small values the scaling may lose
    std::optional<detail::ScaledMean> exact;
    if (!rms && std::isfinite(sums.max_x)) {
        double* xd = buf + 4 * D; // (y's row, written after)
        for (std::int64_t i = 0; i < D; ++i) xd[i] = double(x[i]);
        exact = detail::mean_exactly(xd, std::size_t(D));
        c.mean = exact->scaled(e);
    }
    RowStats st{c.mean, detail::rsqrt(add(c.var, eps_s))};
    dd inv_out = detail::ldexp(st.invstd, -e);
    if (c.var.hi == 0 && eps_s == 0 && eps > 0) // a constant row whose 2^-2e·eps underflowed: x̂ = 0
        inv_out = detail::rsqrt(dd{eps, 0}), st.invstd = dd{1, 0};
    double* ys = buf + 4 * D;
    normalize_row<double>(xs, scaled(gamma, D, 0, buf + 2 * D), scaled(beta, D, 0, buf + 3 * D), D, st, ys);
    for (std::int64_t i = 0; i < D; ++i) y[i] = T(ys[i]);
    if (mean) *mean = detail::to<T>(exact ? exact->scaled(0) : detail::ldexp(c.mean, e));
    if (invstd) *invstd = detail::to<T>(inv_out);
}

/// dx of a row beyond the fast range (x or dy), and its terms of dγ and dβ.
template <class T>
void backward_fallback(const T* x, const T* gamma, const T* dy, std::int64_t D, double eps, bool rms, Scratch& s,
                       T* dx, ColumnSums cols) {
    double* buf = s.rows(D);
    const int e = scale_of(largest(x, D), eps), f = scale_of(largest(dy, D), 0);
    const double eps_s = std::ldexp(eps, -2 * e);
    const double* xs = scaled(x, D, e, buf);
    const double* gs = scaled(dy, D, f, buf + D);
    const double* gam = scaled(gamma, D, 0, buf + 2 * D);
    double K;
    const RowSums sums = centred_sums(xs, gs, gam, D, rms, K);
    RowGradient c = gradient_of(sums, K, D, eps_s, rms);
    int shift = f - e; // dx = 2^(f − e)·(dx of the scaled row)
    const bool constant = from_sums(sums, K, D, rms).var.hi == 0 && eps_s == 0 && eps > 0;
    if (constant) // 2^-2e·eps underflowed: x̂ = 0, dx = invstd·(dx̂ − mean(dx̂)) unscaled
        c.invstd = detail::rsqrt(dd{eps, 0}), c.H = dd{}, shift = f;
    double* out = buf + 4 * D;
    input_gradient_row(xs, gs, gam, D, c, out, ColumnSums{});
    for (std::int64_t i = 0; i < D; ++i) dx[i] = T(std::ldexp(out[i], shift));
    if (!cols.g_hi) return;
    for (std::int64_t i = 0; i < D; ++i) { // dγ += dy·x̂ with x̂ of the scaled row, dβ += dy
        const double g = double(dy[i]);
        const detail::dd d = detail::two_sum(xs[i], -c.mean.hi);
        const dd xhat = constant ? dd{} : mul(detail::fast_two_sum(d.hi, d.lo - c.mean.lo), c.invstd);
        const dd t = mul(xhat, g);
        const dd sg = detail::two_sum(cols.g_hi[i], t.hi);
        cols.g_hi[i] = sg.hi, cols.g_err[i] += sg.lo + t.lo;
        const dd sb = detail::two_sum(cols.b_hi[i], g);
        cols.b_hi[i] = sb.hi, cols.b_err[i] += sb.lo;
    }
}

// ---- the chunks ----------------------------------------------------------------------------

/// Rows [r0, r1): pass A (certified) into per-row statistics, then y row by row.
template <class T>
void forward_chunk(const T* x, const T* gamma, const T* beta, const NormProblem& p, double eps, std::int64_t r0,
                   std::int64_t r1, T* y, T* mean, T* invstd, Scratch& scratch) {
    const std::int64_t D = p.per_set;
    const bool rms = p.norm == Norm::rms;
    const double n = double(D);
    std::vector<Certified> how;
    const MomentsVector ms = certified_moments<T, false>(x + r0 * D, nullptr, Layout{1, r1 - r0, D}, 0, eps, 1, how);
    const std::vector<char> fast = in_fast_range(ms, sizeof(T) == 8);
    for (std::int64_t r = r0; r < r1; ++r) {
        const std::size_t i = std::size_t(r - r0);
        const T* xr = x + r * D;
        if (!fast[i]) {
            forward_fallback(xr, gamma, beta, D, eps, rms, scratch, y + r * D, mean ? mean + r : nullptr,
                             invstd ? invstd + r : nullptr);
            continue;
        }
        const Moments& m = ms[i];
        // RMS: mean(x²) = M2/D + μ², both ≥ 0 (no cancellation)
        const dd var = rms ? add(div(m.m2, n), mul(m.mean, m.mean)) : div(m.m2, n);
        const RowStats s{rms ? dd{} : m.mean, detail::rsqrt(add(var, eps))};
        normalize_row(xr, gamma, beta, D, s, y + r * D);
        if (mean) mean[r] = detail::to<T>(s.mean);
        if (invstd) invstd[r] = detail::to<T>(s.invstd);
    }
}

/// How a row's backward is computed: the coefficients of its dx, or the fallback.
struct RowPlan {
    bool fallback = false;
    RowGradient c{};
    bool precise = false; // c carried to ~2^-100 (plan_from_sums), not only certified
    bool exact = false;   // dx may be a tiny fraction of its terms: checked after (exact_row)
    double least = 0;     // ... and when every |dx| is below this, the exact tier computes it
    double small = 0; // float32: dx values below this are computed again in double-double
    double bound = 0; // float32: a bound on Σ|dy| and on Σ|dy·x̂| over the row
};

/// A bound on |dx̂| + |B| + |H|·|x − μ| over a row, given max|dx̂| and max|x|, times
/// invstd and 2^-26 (cancels): pass B's threshold for computing dx again in double-double.
double small_of(const RowGradient& c, double max_g, double max_x) {
    const double terms = max_g + std::abs(c.B.hi) + std::abs(c.H.hi) * (max_x + std::abs(c.mean.hi));
    return 0x1p-26 * c.invstd.hi * terms * (1 + 0x1p-20);
}

/// Marks a row whose dx = invstd·(dx̂ − B − (x − μ)·H) may be below 2^-40 of its terms
/// (dy nearly affine in x, or exactly: a constant dy), where coefficients to ~2^-100 of
/// the terms no longer give dx to its own last bits; once its dx is computed, a row whose
/// every |dx| is below plan.least is computed again by the exact tier. Such a row needs
/// every |dx̂| within |B| + |H|·|x − μ| and that fraction: a row whose largest |dx̂| is
/// beyond cannot, and is not checked. |x − μ| is at most |x| + |μ|, and at most
/// √M2 ≤ √D/invstd (Cauchy–Schwarz; far smaller for data offset from 0).
void mark_cancelling(RowPlan& plan, double max_g, double max_x, std::int64_t D) {
    const RowGradient& c = plan.c;
    const double max_d = std::min(max_x + std::abs(c.mean.hi), std::sqrt(double(D)) / c.invstd.hi);
    const double fit = std::abs(c.B.hi) + std::abs(c.H.hi) * max_d;
    plan.exact = max_g <= fit * (1 + 0x1p-38);
    plan.least = 0x1p-40 * c.invstd.hi * (max_g + fit);
}

/// Whether every |dx| of a row is below `least` (four lanes at a time).
template <class T> bool all_below(const T* dx, std::int64_t n, double least) {
    using detail::simd::v4d;
    v4d m4{};
    double m = 0;
    std::int64_t i = 0;
    for (; i + 4 <= n; i += 4) m4 = max_magnitude(m4, lanes<v4d>(dx, std::size_t(i)));
    for (; i < n; ++i) m = max_magnitude(m, double(dx[i]));
    for (int j = 0; j < 4; ++j) m = max_magnitude(m, m4[j]);
    return m < least;
}

/// dx of a row by the exact tier (ExactSet, dx̂ = γ·dy exactly as hi + lo); false, with
/// nothing written, when a value is not finite.
template <class T>
bool exact_row(const T* x, const T* gamma, const T* dy, std::int64_t D, double eps, bool rms, Scratch& s, T* dx) {
    double *xs = s.rows(D), *hi = xs + D, *lo = hi + D;
    for (std::int64_t i = 0; i < D; ++i) {
        const dd g = detail::two_prod(double(dy[i]), gamma ? double(gamma[i]) : 1.0);
        xs[i] = double(x[i]), hi[i] = g.hi, lo[i] = std::isfinite(g.hi) ? g.lo : 0.0;
    }
    const detail::ExactSet set(xs, hi, lo, std::size_t(D), eps, !rms);
    if (!set.usable()) return false;
    if (set.zero()) std::fill(dx, dx + D, T(0));
    else
        for (std::int64_t i = 0; i < D; ++i) dx[i] = detail::to<T>(set.dx(std::size_t(i)));
    return true;
}

/// The plan of row xr (dy gr) from Sum2 sums around K, carried to ~2^-100 so that dx's
/// three terms may cancel far below the statistics' certified error: RMS rows, float64
/// rows (K = pass A's certified mean, whose range check also sends extreme rows to the
/// fallback) and the float32 layer rows that plan_plain_rows does not certify.
/// gamma_max = max|γ| (1 without γ).
template <class T>
RowPlan plan_from_sums(const T* xr, const T* gr, const T* gamma, std::int64_t D, double eps, bool rms,
                       double gamma_max, double K) {
    constexpr bool is_float = sizeof(T) == 4;
    const RowSums s = row_sums(xr, gr, gamma, D, K);
    const bool in_range = std::isfinite(s.max_x) && std::isfinite(s.max_dy) &&
                          (is_float || s.max_dy == 0 || (s.max_dy >= kMinMagnitude && s.max_dy <= kMaxMagnitude));
    if (!in_range) return {true};
    RowPlan plan{false, gradient_of(s, K, D, eps, rms), true};
    mark_cancelling(plan, s.max_g, s.max_x, D);
    plan.small = small_of(plan.c, s.max_dy * gamma_max, s.max_x);
    plan.bound = double(D) * s.max_dy * (1 + 0x1p-20); // Σ|x̂| ≤ D
    return plan;
}

/// float32 layer norm, up to four rows: plain sums around each row's first value, judged
/// by the engine's backward certificate (certified<true>, with dx̂ as its dy and a =
/// invstd), the four rows' statistics, certificates and coefficients computed as the
/// lanes of one v4d (one row at a time, their chains of divisions and square roots were a
/// quarter of the time on rows of 1024). Rows that fail get plan_from_sums around their
/// plain mean (or first value, when that is not finite).
void plan_plain_rows(const float* const* xs, const float* const* gs, const float* gamma, const double* gamma64,
                     int count, std::int64_t D, double eps, double gamma_max, RowPlan* plans) {
    using detail::simd::v4d;
    Moments m[4];
    double dy_sq[4];
    for (int k = 0; k < 4; ++k) {
        if (k < count) {
            const PlainRow pr = row_moments_plain(xs[k], gs[k], gamma64, D, double(xs[k][0]));
            m[k] = pr.m, dy_sq[k] = pr.dy_sq;
        } else {
            m[k] = m[0], dy_sq[k] = dy_sq[0]; // lanes beyond count: copies, not used
        }
    }
    const MomentsOf<v4d> M = MomentsOf<v4d>::gather(m);
    const mask_of<v4d> ok = certified<true>(M, eps, kFloat32Tolerance, kPlainGamma);
    const v4d n = detail::broadcast<v4d>(double(D));
    dd_of<v4d> var_eps = add(div(M.m2, n), detail::broadcast<v4d>(eps));
    var_eps.hi = ok ? var_eps.hi : detail::broadcast<v4d>(1.0); // rsqrt's lanes must be positive and finite
    var_eps.lo = ok ? var_eps.lo : v4d{};
    const dd_of<v4d> inv = detail::rsqrt(var_eps);
    const dd_of<v4d> B = div(M.sum_dy, n), H = div(mul(mul(M.sum_dyd, inv), inv), n);
    for (int k = 0; k < count; ++k) {
        if (!ok[k]) {
            const double K = std::isfinite(m[k].mean.hi) ? m[k].mean.hi : double(xs[k][0]);
            plans[k] = plan_from_sums(xs[k], gs[k], gamma, D, eps, false, gamma_max, K);
            continue;
        }
        RowPlan& plan = plans[k];
        plan = RowPlan{false, {m[k].mean, {inv.hi[k], inv.lo[k]}, {B.hi[k], B.lo[k]}, {H.hi[k], H.lo[k]}}};
        plan.small = small_of(plan.c, m[k].dy_max_abs, m[k].max_abs);
        plan.bound = std::sqrt(double(D) * dy_sq[k]) * (1 + 0x1p-20); // Cauchy–Schwarz, with Σx̂² ≤ D
    }
}

/// float32: rows whose column terms are added plainly before they are folded (fold_columns):
/// at most kFoldRows + kGroupRows − 1 terms per plain sum.
constexpr std::int64_t kFoldRows = 32;

/// What backward_chunk computes: dx and the columns' terms (float32: plainly), or only
/// the columns' terms, each by TwoProd (float32, when the plain ones were not enough).
enum class Pass { dx, exact_columns };

/// Rows [r0, r1): each row's plan, then dx and the row's terms of dγ and dβ, four rows at a
/// time, so that the second pass over a row finds it in cache. float32: the columns'
/// terms go to `acc`, folded into `cols` once `unfolded` (the rows in acc, carried from
/// chunk to chunk of a band) reaches kFoldRows. gamma64: float32's γ in double (ones
/// without γ). Returns the sum of the rows' bounds (float32; RowPlan::bound) for the
/// plainly added terms.
template <class T>
double backward_chunk(const T* x, const T* gamma, const double* gamma64, const T* dy, const NormProblem& p, double eps,
                      double gamma_max, std::int64_t r0, std::int64_t r1, T* dx, ColumnSums cols, PlainColumns acc,
                      std::int64_t& unfolded, bool stream, Pass pass, Scratch& scratch) {
    constexpr bool is_float = sizeof(T) == 4;
    const std::int64_t D = p.per_set;
    const bool rms = p.norm == Norm::rms;
    MomentsVector ms; // float64: pass A, for the centre and the range of each row
    std::vector<char> fast;
    if constexpr (!is_float) {
        std::vector<Certified> how;
        ms = certified_moments<T, false>(x + r0 * D, nullptr, Layout{1, r1 - r0, D}, 0, eps, 1, how);
        fast = in_fast_range(ms, true);
    }
    double bound = 0;
    RowPlan plans[kGroupRows];
    for (std::int64_t r = r0; r < r1; r += kGroupRows) {
        const int in_group = int(std::min<std::int64_t>(kGroupRows, r1 - r));
        if constexpr (is_float)
            if (!rms) {
                const float *xs[kGroupRows], *gs[kGroupRows];
                for (int k = 0; k < in_group; ++k) xs[k] = x + (r + k) * D, gs[k] = dy + (r + k) * D;
                plan_plain_rows(xs, gs, gamma, gamma64, in_group, D, eps, gamma_max, plans);
            }
        RowGroup group;
        int fast_rows = 0, plan_of[kGroupRows];
        for (int k = 0; k < in_group; ++k) {
            const std::int64_t row = r + k;
            const std::size_t i = std::size_t(row - r0);
            const T *xr = x + row * D, *gr = dy + row * D;
            T* out = dx + row * D;
            RowPlan& plan = plans[k];
            if (rms || !is_float) {
                plan = RowPlan{true};
                if (is_float || fast[i])
                    plan = plan_from_sums(xr, gr, gamma, D, eps, rms, gamma_max, rms || is_float ? 0.0 : ms[i].mean.hi);
            }
            if (pass == Pass::exact_columns) {
                if (!plan.fallback) add_columns_dd(xr, gr, D, plan.c, cols);
                else backward_fallback(xr, gamma, gr, D, eps, rms, scratch, scratch.dx_row<T>(D), cols);
            } else if (plan.fallback) { // and dx again by the exact tier, where finite
                backward_fallback(xr, gamma, gr, D, eps, rms, scratch, out, cols);
                exact_row(xr, gamma, gr, D, eps, rms, scratch, out);
            } else if constexpr (is_float) {
                group.x[fast_rows] = xr, group.dy[fast_rows] = gr, group.dx[fast_rows] = out;
                group.c[fast_rows] = &plan.c, group.small[fast_rows] = plan.small;
                plan_of[fast_rows++] = k;
                bound += plan.bound;
            } else {
                input_gradient_row(xr, gr, gamma, D, plan.c, out, cols);
            }
        }
        if (pass == Pass::exact_columns) continue;
        if constexpr (is_float)
            if (fast_rows > 0) {
                // streamed when the rows' dx are equally aligned
                const unsigned cancelling = stream && D % 8 == 0
                                                ? input_gradient_group_plain<true>(group, fast_rows, gamma64, D, acc)
                                                : input_gradient_group_plain<false>(group, fast_rows, gamma64, D, acc);
                for (int j = 0; j < fast_rows; ++j) {
                    if (!(cancelling >> j & 1)) continue;
                    // a row certified from plain sums has its coefficients to the rms of
                    // dx only: summed again, as plan_from_sums does, for the values that cancel
                    const RowPlan& plan = plans[plan_of[j]];
                    const RowPlan again = plan.precise ? plan
                                                       : plan_from_sums(group.x[j], group.dy[j], gamma, D, eps, false,
                                                                        gamma_max, plan.c.mean.hi);
                    const RowGradient& exact = again.fallback ? plan.c : again.c; // (finite rows: never)
                    redo_cancelling(group.x[j], group.dy[j], gamma, D, plan.c, plan.small, exact, group.dx[j]);
                }
                if (acc.g && (unfolded += fast_rows) >= kFoldRows) fold_columns(acc, cols, D), unfolded = 0;
            }
        for (int k = 0; k < in_group; ++k) { // dx a tiny fraction of its terms: the exact tier
            const RowPlan& plan = plans[k];
            const std::int64_t row = r + k;
            if (!plan.fallback && plan.exact && all_below(dx + row * D, D, plan.least))
                exact_row(x + row * D, gamma, dy + row * D, D, eps, rms, scratch, dx + row * D);
        }
    }
    return bound;
}

} // namespace

template <class T>
void forward_rows(const T* x, const T* gamma, const T* beta, const NormProblem& p, double eps, T* y, T* mean,
                  T* invstd, int threads) {
    const int t = threads_for(p, threads);
    refuse_zero_rows(x, p, eps, t);
    const Rows rows(p);
    detail::parallel_chunks(rows.chunks, 1, t, [&](std::int64_t k0, std::int64_t k1) {
        Scratch scratch;
        for (std::int64_t k = k0; k < k1; ++k)
            forward_chunk(x, gamma, beta, p, eps, rows.first(k), rows.end(k), y, mean, invstd, scratch);
    });
}

template <class T>
void backward_rows(const T* x, const T* gamma, const T* dy, const NormProblem& p, double eps, T* dx, T* dgamma,
                   T* dbeta, int threads) {
    constexpr bool is_float = sizeof(T) == 4;
    const int t = threads_for(p, threads);
    refuse_zero_rows(x, p, eps, t);
    const Rows rows(p);
    const std::int64_t D = rows.D;
    const bool columns = dgamma || dbeta;
    const double gamma_max = gamma ? largest(gamma, D) : 1.0;
    std::vector<double> gamma64; // float32's γ in double, ones without γ, for the row kernels
    if (is_float) {
        if (gamma)
            gamma64.assign(gamma, gamma + D);
        else
            gamma64.assign(std::size_t(D), 1.0);
    }
    const bool stream = is_float && p.size() * std::int64_t(sizeof(T)) >= kStreamRows && stream_clear_of(dx, x, dy);
    // dγ, dβ: band b sums chunks [b·chunks/bands, (b + 1)·chunks/bands) in chunk order,
    // into its own compensated column sums (4 arrays of D, and float32's 2 plain ones);
    // the bands merged in order
    const std::int64_t bands =
        columns ? std::clamp<std::int64_t>(std::min(kMaxBands, kBandValues / (6 * D)), 1, rows.chunks) : rows.chunks;
    std::vector<double> partial(columns ? std::size_t(bands * 6 * D) : 0, 0.0);
    std::vector<double> chunk_bound(std::size_t(rows.chunks), 0.0);
    auto run = [&](Pass pass) {
        detail::parallel_chunks(bands, 1, t, [&](std::int64_t b0, std::int64_t b1) {
            Scratch scratch;
            for (std::int64_t b = b0; b < b1; ++b) {
                ColumnSums cols{};
                PlainColumns acc{};
                if (columns) {
                    double* c = partial.data() + b * 6 * D;
                    cols = {c, c + D, c + 2 * D, c + 3 * D};
                    if (is_float && pass == Pass::dx) acc = {c + 4 * D, c + 5 * D};
                }
                std::int64_t unfolded = 0;
                for (std::int64_t k = b * rows.chunks / bands; k < (b + 1) * rows.chunks / bands; ++k)
                    chunk_bound[std::size_t(k)] =
                        backward_chunk(x, gamma, gamma64.empty() ? nullptr : gamma64.data(), dy, p, eps, gamma_max,
                                       rows.first(k), rows.end(k), dx, cols, acc, unfolded, stream, pass, scratch);
                if (acc.g && unfolded > 0) fold_columns(acc, cols, D);
            }
            if (stream) detail::simd::stream_fence(); // before another thread reads dx
        });
    };
    run(Pass::dx);
    if (!columns) return;
    // the merged sums, hi and lo per column: g (dγ) and b (dβ)
    std::vector<double> merged(std::size_t(4 * D));
    double *g_hi = merged.data(), *g_lo = g_hi + D, *b_hi = g_lo + D, *b_lo = b_hi + D;
    auto merge = [&] { // band by band, each column's bands in order (and the memory in order)
        std::fill(merged.begin(), merged.end(), 0.0);
        for (std::int64_t k = 0; k < bands; ++k) {
            const double* c = partial.data() + k * 6 * D;
            each_lane(D, [&]<class V>(std::int64_t i, V) {
                const std::size_t j = std::size_t(i);
                const dd_of<V> gi = add(dd_of<V>{lanes<V>(g_hi, j), lanes<V>(g_lo, j)},
                                        detail::two_sum(lanes<V>(c, j), lanes<V>(c + D, j)));
                const dd_of<V> bi = add(dd_of<V>{lanes<V>(b_hi, j), lanes<V>(b_lo, j)},
                                        detail::two_sum(lanes<V>(c + 2 * D, j), lanes<V>(c + 3 * D, j)));
                put(g_hi, j, gi.hi), put(g_lo, j, gi.lo), put(b_hi, j, bi.hi), put(b_lo, j, bi.lo);
            });
        }
    };
    merge();
    if constexpr (is_float) {
        // The plain terms are off by at most γ(kFoldRows + 6) of Σ|term| each, which is at
        // most Σ of the rows' bounds for dγ and for dβ alike: normwise within 2^-30 of the
        // result, or summed again by TwoProd (dy that cancels over the rows).
        double terms = 0, norm_g = 0, norm_b = 0;
        for (const double c : chunk_bound) terms += c;
        for (std::int64_t i = 0; i < D; ++i)
            norm_g += g_hi[i] * g_hi[i], norm_b += b_hi[i] * b_hi[i];
        const double err = gamma_of(kFoldRows + kGroupRows + 6) * terms * (1 + 0x1p-10);
        if ((dgamma && !(err <= 0x1p-30 * std::sqrt(norm_g))) || (dbeta && !(err <= 0x1p-30 * std::sqrt(norm_b)))) {
            std::fill(partial.begin(), partial.end(), 0.0);
            run(Pass::exact_columns);
            merge();
        }
    }
    for (std::int64_t i = 0; i < D; ++i) {
        if (dgamma) dgamma[i] = detail::to<T>(dd{g_hi[i], g_lo[i]});
        if (dbeta) dbeta[i] = detail::to<T>(dd{b_hi[i], b_lo[i]});
    }
}

#define BNORM_FAMILY_ROWS(T)                                                                                          \
    template void forward_rows<T>(const T*, const T*, const T*, const NormProblem&, double, T*, T*, T*, int);       \
    template void backward_rows<T>(const T*, const T*, const T*, const NormProblem&, double, T*, T*, T*, int);
BNORM_FAMILY_ROWS(float)
BNORM_FAMILY_ROWS(double)
#undef BNORM_FAMILY_ROWS

} // namespace bnorm::family
