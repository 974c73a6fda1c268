// A channel's statistics in double-double (Moments), from a block's sums, and merged
// across blocks with Chan, Golub & LeVeque's pairwise formula.
#pragma once

#include "lanes.hpp"
#include "stats/sums.hpp"
#include "bnorm/detail/kept.hpp"
#include <cstddef>
#include <utility>
#include <vector>

namespace bnorm::kernels {

/// A channel's statistics in double-double: count, mean, M2 = Σ(x − mean)², and for
/// backward Σ dy and Σ dy·(x − mean). Blocks are merged with Chan, Golub & LeVeque's
/// pairwise formula, each centred on its own mean. D = v4d holds four channels.
///
/// For the certificates it also carries: sq = Σ over blocks of Σ(x − K)² (≥ M2),
/// dy_sq = Σ dy² (plain in the fast kernels, compensated in the error-free ones, merged in
/// double-double), and rel = the largest relative rounding bound γ of a block's plain
/// accumulations (0 when they are error-free); dy_sq's own bound depends on the kernels
/// only (dy_squares_rel). max_abs and dy_max_abs are the largest |x| and |dy| from the
/// biased and error-free kernels; the plain ones leave them 0.
template <class D> struct MomentsOf {
    D n{};
    dd_of<D> mean{}, m2{}, sum_dy{}, sum_dyd{};
    D max_abs{}, dy_max_abs{};
    dd_of<D> dy_sq{};
    D sq{}, rel{};

    /// Calls f(a's number, b's numbers...) for each number of a MomentsOf a and others b.
    template <class F, class A, class... B> static void each_number(F&& f, A& a, B&... b) {
        f(a.n, b.n...), f(a.mean.hi, b.mean.hi...), f(a.mean.lo, b.mean.lo...), f(a.m2.hi, b.m2.hi...);
        f(a.m2.lo, b.m2.lo...), f(a.sum_dy.hi, b.sum_dy.hi...), f(a.sum_dy.lo, b.sum_dy.lo...);
        f(a.sum_dyd.hi, b.sum_dyd.hi...), f(a.sum_dyd.lo, b.sum_dyd.lo...), f(a.max_abs, b.max_abs...);
        f(a.dy_max_abs, b.dy_max_abs...), f(a.sq, b.sq...), f(a.dy_sq.hi, b.dy_sq.hi...), f(a.dy_sq.lo, b.dy_sq.lo...);
        f(a.rel, b.rel...);
    }

    /// Channels m[0, kLanesOf<D>) as one MomentsOf<D>.
    static MomentsOf gather(const MomentsOf<double>* m) {
        if constexpr (std::is_same_v<D, double>) return *m;
        else {
            MomentsOf r;
            [&]<std::size_t... J>(std::index_sequence<J...>) {
                each_number([](D& v, auto... a) { v = D{a...}; }, r, m[J]...);
            }(std::make_index_sequence<kLanesOf<D>>{});
            return r;
        }
    }

    /// The inverse: this to m[0, kLanesOf<D>).
    void scatter(MomentsOf<double>* m) const {
        if constexpr (std::is_same_v<D, double>) *m = *this;
        else
            [&]<std::size_t... J>(std::index_sequence<J...>) {
                each_number([](const D& v, auto&... a) { ((a = v[J]), ...); }, *this, m[J]...);
            }(std::make_index_sequence<kLanesOf<D>>{});
    }

    /// The moments of channel c (c..c+3 for v4d) of a block's sums, whose count is not 0;
    /// rel is the relative bound of the sums' errors (0 for the error-free kernels).
    static MomentsOf of(const Sums& t, std::size_t c, bool backward, D rel) {
        using detail::add, detail::div, detail::mul, detail::sub, detail::two_sum;
        MomentsOf m;
        m.n = lanes<D>(t.n, c);
        m.rel = rel;
        m.sq = lanes<D>(t.s2, c);
        if (backward) m.dy_sq = two_sum(lanes<D>(t.b3, c), lanes<D>(t.b3_err, c));
        const D K = lanes<D>(t.K, c);
        const dd_of<D> s1 = two_sum(lanes<D>(t.s1, c), lanes<D>(t.s1_err, c));
        const dd_of<D> shift = div(s1, m.n); // mean − K
        m.mean = add(shift, K);
        m.m2 = sub(two_sum(lanes<D>(t.s2, c), lanes<D>(t.s2_err, c)), mul(s1, shift));
        m.max_abs = lanes<D>(t.max_abs, c);
        if (backward) {
            // Σ dy·(x − mean) = Σ dy·(x − K) − (mean − K)·Σ dy
            m.sum_dy = two_sum(lanes<D>(t.b1, c), lanes<D>(t.b1_err, c));
            m.sum_dyd = sub(two_sum(lanes<D>(t.b2, c), lanes<D>(t.b2_err, c)), mul(m.sum_dy, shift));
            m.dy_max_abs = lanes<D>(t.dy_max_abs, c);
        }
        return m;
    }

    /// Adds the moments o of other values of the same channel (D = double; either may be
    /// empty).
    void merge(const MomentsOf& o) {
        if (o.n == 0) return;
        if (n == 0) {
            *this = o;
            return;
        }
        combine(o);
    }

    /// merge when neither is empty (no lane, for v4d): Chan, Golub & LeVeque's pairwise
    /// formula, each side centred on its own mean; lane by lane the operations of a double.
    /// Not inlined: in its callers, it made GCC inline less elsewhere, which slowed the tiny
    /// calls that never merge.
    [[gnu::noinline]] void combine(const MomentsOf& o) {
        using detail::add, detail::div, detail::mul, detail::sub;
        max_abs = larger(max_abs, o.max_abs), dy_max_abs = larger(dy_max_abs, o.dy_max_abs);
        rel = larger(rel, o.rel);
        sq += o.sq, dy_sq = add(dy_sq, o.dy_sq);
        const D total = n + o.n; // exact: counts are far below 2^53
        const dd_of<D> delta = sub(o.mean, mean);
        const dd_of<D> new_mean = add(mean, div(mul(delta, o.n), total));
        const dd_of<D> between = div(mul(mul(delta, delta), D(n * o.n)), total);
        m2 = add(add(m2, o.m2), between);
        // Σ dy·(x − μ) = Σ_a dy·(x − μ_a) + (μ_a − μ)·Σ_a dy + Σ_o dy·(x − μ_o) + (μ_o − μ)·Σ_o dy
        sum_dyd = add(add(sum_dyd, mul(sub(mean, new_mean), sum_dy)),
                      add(o.sum_dyd, mul(sub(o.mean, new_mean), o.sum_dy)));
        sum_dy = add(sum_dy, o.sum_dy);
        mean = new_mean;
        n = total;
    }
};
using Moments = MomentsOf<double>;
/// Per-channel (or per block and channel) Moments, in kept storage (bnorm/detail/kept.hpp).
using MomentsVector = std::vector<Moments, detail::Kept<Moments>>;

} // namespace bnorm::kernels
