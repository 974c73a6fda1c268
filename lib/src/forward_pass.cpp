// The forward pass object: pass A's statistics into per-channel coefficients, then y by
// pass B's kernels over any range of rows, and the exact kernel's channels put in place.
#include "bnorm/batchnorm.hpp"

#include "batchnorm_exact.hpp"
#include "certificates.hpp"
#include "certified_moments.hpp"
#include "ddouble.hpp"
#include "exact_channels.hpp"
#include "formulas.hpp"
#include "lanes.hpp"
#include "pass_b/kernels.hpp"
#include "pass_b/rows.hpp"
#include "pass_b/streaming.hpp"
#include "pass_state.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <vector>

namespace bnorm {
namespace detail {

using namespace kernels;

template <class T>
ForwardState<T>::ForwardState(const T* x, const T* gamma, const T* beta, const Layout& l, std::int64_t whole,
                            std::int64_t c0, double eps, int threads)
    : x_(x + c0 * l.inner), gamma_(shifted(gamma, c0)), beta_(shifted(beta, c0)), l_(l), whole_(whole), eps_(eps),
      threads_(threads_for(l, threads)) {
    assert(l.channels >= 1 && l.per_channel() >= 2 && eps >= 0);
    assert(c0 >= 0 && c0 + l.channels <= whole && (whole == l.channels || l.inner > 1));
    constexpr bool is_double = sizeof(T) == 8; // the fast path's range check applies to float64
    std::vector<Certified> how; // (forward's pass B is the same for every stage)
    const MomentsVector ms = certified_moments<T, false>(x_, nullptr, l, whole_, eps, threads_, how);
    fast_ = in_fast_range(ms, is_double);

    // Per channel: y = a·(x − μ) + β with a = γ·invstd.
    const std::size_t C = std::size_t(l.channels);
    mean_.resize(C), invstd_.resize(C);
    // μ (hi, lo), a (hi, lo), β, M2 (hi, lo, certified), μ's error bound: arrays on cache lines
    const std::size_t P = padded(C);
    double *mu_hi = line_arrays(coefficients_, 9, C), *mu_lo = mu_hi + P, *a_hi = mu_lo + P, *a_lo = a_hi + P,
           *b = a_lo + P, *m2_hi = b + P, *m2_lo = m2_hi + P, *m2_certified = m2_lo + P, *mu_error = m2_certified + P;
    // update_running's variance needs M2 to T's precision relative to M2 itself, where the
    // forward certificate bounds its error against M2 + m·eps only (eps may dominate): the
    // same bound, 12·rel·Σ(x − K)² (certificates.hpp), against M2 alone
    const double m2_tolerance = is_double ? kFloat64Tolerance.output : kFloat32Tolerance.output;
    for_fast_channel_lanes(fast_, [&](std::size_t c, auto lanes_type) {
        using D = decltype(lanes_type);
        const MomentsOf<D> m = MomentsOf<D>::gather(&ms[c]);
        put(m2_hi, c, m.m2.hi), put(m2_lo, c, m.m2.lo); // for update_running
        put(mu_error, c, plain_errors(m).mean); // for update_running: |μ − computed μ| (the certificate's bound)
        for (int j = 0; j < kLanesOf<D>; ++j)
            m2_certified[c + std::size_t(j)] =
                lane(m.rel, j) == 0 || 12 * lane(m.rel, j) * lane(m.sq, j) <= m2_tolerance * lane(m.m2.hi, j);
        const bool fast = kLanesOf<D> > 1 || fast_[c];
        const dd_of<D> inv = fast ? inverse_std(m, eps, c) : dd_of<D>{detail::broadcast<D>(NAN), D{}};
        detail::to_each(&mean_[c], m.mean), detail::to_each(&invstd_[c], inv);
        const dd_of<D> a = detail::mul(inv, values<D>(gamma_, c, 1.0));
        put(mu_hi, c, m.mean.hi), put(mu_lo, c, m.mean.lo), put(a_hi, c, a.hi), put(a_lo, c, a.lo);
        put(b, c, values<D>(beta_, c, 0.0));
    });
}

/// The channels beyond the fast path's range (non-finite data, extreme float64
/// magnitudes): the exact kernel, run on first need.
template <class T> void ForwardState<T>::run_exact() const {
    if (eval_ || all_fast(fast_)) return; // (inference mode: exact_ set by the constructor)
    std::call_once(exact_done_, [&] {
        const std::size_t C = std::size_t(l_.channels);
        std::vector<T> y(std::size_t(l_.size())), mean_exact(C), invstd_exact(C);
        const std::vector<T> x = contiguous_copy(x_, l_, whole_); // (a group of channels)
        detail::forward_exact(x.empty() ? x_ : x.data(), l_, gamma_, beta_, eps_, y.data(), mean_exact.data(),
                              invstd_exact.data());
        for (std::size_t c = 0; c < C; ++c)
            if (!fast_[c]) mean_[c] = mean_exact[c], invstd_[c] = invstd_exact[c];
        exact_ = std::move(y);
    });
}

template <class T> bool ForwardState<T>::inputs_proven_finite() const { return !eval_ && all_fast(fast_); }

template <class T> void ForwardState<T>::statistics(T* mean, T* invstd) const {
    run_exact();
    if (mean) std::copy(mean_.begin(), mean_.end(), mean);
    if (invstd) std::copy(invstd_.begin(), invstd_.end(), invstd);
}

template <class T> void ForwardState<T>::apply(std::int64_t o0, std::int64_t o1, T* y) const {
    run_exact();
    const std::size_t C = std::size_t(l_.channels);
    const std::size_t P = padded(C);
    const double* __restrict pmh = first_line(coefficients_);
    const double *__restrict pml = pmh + P, *__restrict pah = pml + P, *__restrict pal = pah + P,
                               *__restrict pb = pal + P;
    const double* __restrict pt = pb + P; // inference, float32: cancel_threshold(β) (running.cpp)
    const std::int64_t base = o0 * whole_ * l_.inner; // y holds rows [o0, o1)
    // (all groups', or the whole tensor's when this is a piece of it: GivenForward, GivenBackward)
    const std::int64_t out_bytes = std::max(stream_bytes_, (o1 - o0) * whole_ * l_.inner * std::int64_t(sizeof(T)));
    // float64 inference streams from 16 MiB on every machine: in ordinary stores its NCHW y
    // (51 MB) took 1.09 to 1.21 of the streamed time at two threads (Zen 5 guest)
    const std::int64_t stream_from = stream_from_      ? stream_from_
                                     : sizeof(T) == 8 && eval_ ? std::int64_t(16) << 20
                                                               : detail::stream_threshold();
    // pass B: x and y are (outer, C, inner); a run is `count` channels of `inner` values.
    for_rows_parallel<T>(l_, whole_, o0, o1, threads_, [&](std::int64_t off, std::int64_t c0, std::int64_t count,
                                                           std::int64_t inner, std::int64_t rows) {
        const T* __restrict xs = x_ + off;
        T* __restrict ys = y + (off - base);
        with_streaming(out_bytes, stream_from, stream_clear_of(ys, xs), [&](auto stream) {
            constexpr bool S = decltype(stream)::value;
            if constexpr (sizeof(T) == 4) {
                if (eval_) { // inference: a in double-double (β may cancel a·(x − μ)); μ's low part is 0
                    if (inner == 1)
                        normalize_rows_dd_f32<S>(xs, ys, count, rows, pmh + c0, pah + c0, pal + c0, pb + c0,
                                                 pt + c0);
                    else
                        for (std::int64_t j = 0; j < count; ++j)
                            normalize_run_dd_f32<S>(xs + j * inner, ys + j * inner, inner, pmh[c0 + j], pah[c0 + j],
                                                    pal[c0 + j], pb[c0 + j]);
                    return;
                }
                // training: y = a·((x − μh) − μl) + β in double
                if (inner == 1)
                    normalize_rows_plain<S>(xs, ys, count, rows, pmh + c0, pml + c0, pah + c0, pb + c0);
                else
                    for (std::int64_t j = 0; j < count; ++j)
                        normalize_run_plain<S>(xs + j * inner, ys + j * inner, inner, pmh[c0 + j], pml[c0 + j],
                                               pah[c0 + j], pb[c0 + j]);
            } else { // in double-double
                if (inner == 1)
                    normalize_rows_dd<S>(xs, ys, count, rows, pmh + c0, pml + c0, pah + c0, pal + c0, pb + c0, eval_);
                else
                    for (std::int64_t j = 0; j < count; ++j)
                        normalize_run_dd<S>(xs + j * inner, ys + j * inner, inner, pmh[c0 + j], pml[c0 + j],
                                            pah[c0 + j], pal[c0 + j], pb[c0 + j]);
            }
        });
    });
    if (!exact_.empty()) take_slow_channels(l_, whole_, fast_, exact_.data(), y, o0, o1);
}

template struct ForwardState<float>;
template struct ForwardState<double>;

} // namespace detail

template <class T>
ForwardPass<T>::ForwardPass(const T* x, const T* gamma, const T* beta, const Layout& l, double eps, int threads)
    : s_(std::make_unique<detail::ForwardState<T>>(x, gamma, beta, l, l.channels, 0, eps, threads)) {}
template <class T> ForwardPass<T>::~ForwardPass() = default;
template <class T> ForwardPass<T>::ForwardPass(ForwardPass&&) noexcept = default;
template <class T> ForwardPass<T>& ForwardPass<T>::operator=(ForwardPass&&) noexcept = default;
template <class T> void ForwardPass<T>::statistics(T* mean, T* invstd) const { s_->statistics(mean, invstd); }
template <class T> void ForwardPass<T>::apply(std::int64_t o0, std::int64_t o1, T* y) const { s_->apply(o0, o1, y); }
template <class T> bool ForwardPass<T>::inputs_proven_finite() const { return s_->inputs_proven_finite(); }

template class ForwardPass<float>;
template class ForwardPass<double>;

} // namespace bnorm
