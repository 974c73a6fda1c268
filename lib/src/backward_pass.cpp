// The backward pass object: pass A's sums into per-channel coefficients of dx, then dx by
// pass B's kernels over any range of rows (every error term where a channel needs it).
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
BackwardState<T>::BackwardState(const T* x, const T* gamma, const T* dy, const Layout& l, std::int64_t whole,
                              std::int64_t c0, double eps, int threads)
    : x_(x + c0 * l.inner), gamma_(shifted(gamma, c0)), dy_(dy + c0 * l.inner), l_(l), whole_(whole), eps_(eps),
      threads_(threads_for(l, threads)) {
    assert(l.channels >= 1 && l.per_channel() >= 2 && eps >= 0);
    assert(c0 >= 0 && c0 + l.channels <= whole && (whole == l.channels || l.inner > 1));
    constexpr bool is_double = sizeof(T) == 8; // the fast path's range check applies to float64
    // careful_: the channels whose fast sums were not certified, summed again (float32:
    // biased, or error-free; float64: error-free). float32: their dx needs every error term
    // too (float64 dx always has them). For those summed error-free, pass B's own bound
    // is checked (pass_b_enough)
    std::vector<Certified> how;
    const MomentsVector ms = certified_moments<T, true>(x_, dy_, l, whole_, eps, threads_, how);
    fast_ = in_fast_range(ms, is_double);
    careful_.resize(how.size());
    for (std::size_t c = 0; c < how.size(); ++c) careful_[c] = how[c] != Certified::fast;
    // channels summed again error-free: is double-double pass B enough?
    const Tolerance& careful_tol = is_double ? kFloat64Tolerance : kFloat32CarefulTolerance;
    for (std::size_t c = 0; c < ms.size(); ++c)
        if (how[c] == Certified::exact && fast_[c] && !pass_b_enough(ms[c], eps, careful_tol))
            fast_[c] = 0; // dx a tiny fraction of |dy|, |B| or |μ·H|: the exact kernel

    // Per channel: dx = a·(dy − B − (x − μ)·H) with a = γ·invstd, B = dβ/m, H = invstd·dγ/m.
    const std::size_t C = std::size_t(l.channels);
    const double m_count = double(l.per_channel());
    // μ, a, B, H (hi, lo each), and K for the double-double pass B (float64, and float32
    // with careful channels). Only what is used: the tiny calls' blocks then stay within
    // glibc's per-thread cache of small blocks
    dgamma_.resize(C), dbeta_.resize(C);
    const bool with_K = is_double || std::any_of(careful_.begin(), careful_.end(), [](char k) { return k; });
    if (with_K) offset_form_.assign(C, 0), offset_form4_.assign(C, 0);
    const std::size_t P = padded(C); // arrays on cache lines
    double *mu_hi = line_arrays(coefficients_, with_K ? 10 : 8, C), *mu_lo = mu_hi + P, *a_hi = mu_lo + P,
           *a_lo = a_hi + P, *B_hi = a_lo + P, *B_lo = B_hi + P, *H_hi = B_lo + P, *H_lo = H_hi + P;
    double *K_hi = with_K ? H_lo + P : nullptr, *K_lo = with_K ? K_hi + P : nullptr;
    for_fast_channel_lanes(fast_, [&](std::size_t c, auto lanes_type) {
        using D = decltype(lanes_type);
        const MomentsOf<D> m = MomentsOf<D>::gather(&ms[c]);
        const bool fast = kLanesOf<D> > 1 || fast_[c];
        const dd_of<D> inv = fast ? inverse_std(m, eps, c) : dd_of<D>{detail::broadcast<D>(NAN), D{}};
        const dd_of<D> dg = detail::mul(m.sum_dyd, inv); // dγ = invstd·Σ dy·(x − μ)
        detail::to_each(&dbeta_[c], m.sum_dy), detail::to_each(&dgamma_[c], dg);
        const dd_of<D> a = detail::mul(inv, values<D>(gamma_, c, 1.0));
        const dd_of<D> B = detail::div(m.sum_dy, detail::broadcast<D>(m_count));
        const dd_of<D> H = detail::div(detail::mul(dg, inv), detail::broadcast<D>(m_count));
        put(mu_hi, c, m.mean.hi), put(mu_lo, c, m.mean.lo), put(a_hi, c, a.hi), put(a_lo, c, a.lo);
        put(B_hi, c, B.hi), put(B_lo, c, B.lo), put(H_hi, c, H.hi), put(H_lo, c, H.lo);
        if (with_K) {
            const dd_of<D> K = detail::sub(B, detail::mul(m.mean, H)); // dβ/m − μ·H
            put(K_hi, c, K.hi), put(K_lo, c, K.lo);
            const D sd = detail::simd::sqrt(D(m.m2.hi / m.n));
            for (int j = 0; j < kLanesOf<D>; ++j) // false for NaN
                offset_form_[c + j] = std::abs(lane(m.mean.hi, j)) <= kOffsetFormSpread * lane(sd, j);
        }
    });
    if (with_K)
        for (std::size_t c = 0; c + 3 < C; ++c)
            offset_form4_[c] = offset_form_[c] && offset_form_[c + 1] && offset_form_[c + 2] && offset_form_[c + 3];
}

/// As ForwardPass::run_exact.
template <class T> void BackwardState<T>::run_exact() const {
    if (all_fast(fast_)) return;
    std::call_once(exact_done_, [&] {
        const std::size_t C = std::size_t(l_.channels);
        std::vector<T> dx(std::size_t(l_.size())), dgamma_exact(C), dbeta_exact(C);
        const std::vector<T> x = contiguous_copy(x_, l_, whole_), dy = contiguous_copy(dy_, l_, whole_);
        detail::backward_exact(x.empty() ? x_ : x.data(), gamma_, dy.empty() ? dy_ : dy.data(), l_, eps_, dx.data(),
                               dgamma_exact.data(), dbeta_exact.data(), fast_.data());
        for (std::size_t c = 0; c < C; ++c)
            if (!fast_[c]) dgamma_[c] = dgamma_exact[c], dbeta_[c] = dbeta_exact[c];
        exact_ = std::move(dx);
    });
}

template <class T> bool BackwardState<T>::inputs_proven_finite() const { return !eval_dx_ && all_fast(fast_); }

template <class T> void BackwardState<T>::gradients(T* dgamma, T* dbeta) const {
    run_exact();
    if (dgamma) std::copy(dgamma_.begin(), dgamma_.end(), dgamma);
    if (dbeta) std::copy(dbeta_.begin(), dbeta_.end(), dbeta);
}

template <class T> void BackwardState<T>::apply(std::int64_t o0, std::int64_t o1, T* dx) const {
    if (eval_dx_) return eval_dx_->apply(o0, o1, dx); // inference mode: dx = a·dy
    run_exact();
    const std::size_t C = std::size_t(l_.channels);
    const std::size_t P = padded(C);
    const double* __restrict pmh = first_line(coefficients_);
    const double *__restrict pml = pmh + P, *__restrict pah = pml + P, *__restrict pal = pah + P,
                               *__restrict pBh = pal + P, *__restrict pBl = pBh + P, *__restrict pHh = pBl + P,
                               *__restrict pHl = pHh + P;
    const bool with_K = !offset_form_.empty(); // float64, and float32 with careful channels
    const double *__restrict pKh = with_K ? pHl + P : nullptr, *__restrict pKl = with_K ? pKh + P : nullptr;
    const std::int64_t base = o0 * whole_ * l_.inner; // dx holds rows [o0, o1)
    // (all groups', or the whole tensor's when this is a piece of it: GivenForward, GivenBackward)
    const std::int64_t out_bytes = std::max(stream_bytes_, (o1 - o0) * whole_ * l_.inner * std::int64_t(sizeof(T)));
    const std::int64_t stream_from = stream_from_ ? stream_from_ : detail::stream_threshold();
    // float32 with every channel careful (say dy nearly linear in x everywhere): pass B
    // goes straight to the double-double kernels, with the same operations per value as
    // the careful rows below, and not through the plain kernel first.
    const bool all_careful = sizeof(T) == 4 && std::all_of(careful_.begin(), careful_.end(), [](char k) { return k; });
    const bool all_offset = with_K && std::all_of(offset_form_.begin(), offset_form_.end(), [](char k) { return k; });
    const bool all_centred = with_K && std::none_of(offset_form_.begin(), offset_form_.end(), [](char k) { return k; });
    // pass B: term 1 − term 2 − term 3 = dy − dβ/m − x̂·dγ/m, times γ·invstd.
    for_rows_parallel<T>(l_, whole_, o0, o1, threads_,
                         [&](std::int64_t off, std::int64_t c0, std::int64_t count, std::int64_t inner, std::int64_t rows) {
        const T* __restrict xs = x_ + off;
        const T* __restrict gs = dy_ + off;
        T* __restrict out = dx + (off - base);
        // float64 channels-last rows in the offset form store dx in the ordinary way: streamed,
        // pass B's loads waited on the streamed stores (Zen 5, docs/performance.md)
        const bool streamed = !(sizeof(T) == 8 && inner == 1 && all_offset);
        with_streaming(streamed ? out_bytes : 0, stream_from, stream_clear_of(out, xs, gs), [&](auto stream) {
            constexpr bool S = decltype(stream)::value;
            if constexpr (sizeof(T) == 4)
                if (!all_careful) { // certified plain sums; careful channels are redone below
                    if (inner == 1)
                        input_gradient_rows_plain<S>(xs, gs, out, count, rows, pmh + c0, pah + c0, pBh + c0, pHh + c0);
                    else
                        for (std::int64_t j = 0; j < count; ++j)
                            input_gradient_run_plain<S>(xs + j * inner, gs + j * inner, out + j * inner, inner,
                                                        pmh[c0 + j], pah[c0 + j], pBh[c0 + j], pHh[c0 + j]);
                    return;
                }
            // every channel in double-double, in the offset form where it applies
            if (inner == 1) {
                auto rows_dd = all_offset    ? input_gradient_rows_dd<S, DxForms::all_offset, T>
                               : all_centred ? input_gradient_rows_dd<S, DxForms::all_centred, T>
                                             : input_gradient_rows_dd<S, DxForms::mixed, T>;
                rows_dd(xs, gs, out, count, rows, pmh + c0, pml + c0, pah + c0, pal + c0, pBh + c0, pBl + c0, pHh + c0,
                        pHl + c0, pKh + c0, pKl + c0, offset_form_.data() + c0, offset_form4_.data() + c0);
            } else
                for (std::int64_t j = 0; j < count; ++j) {
                    const std::int64_t c = c0 + j;
                    if (offset_form_[std::size_t(c)])
                        input_gradient_run_offset_dd<S, T>(xs + j * inner, gs + j * inner, out + j * inner, inner,
                                                           pah[c], pal[c], pKh[c], pKl[c], pHh[c], pHl[c]);
                    else
                        input_gradient_run_dd<S, T>(xs + j * inner, gs + j * inner, out + j * inner, inner, pmh[c],
                                                    pml[c], pah[c], pal[c], pBh[c], pBl[c], pHh[c], pHl[c]);
                }
        });
    });
    if constexpr (sizeof(T) == 4) { // the float32 channels whose sums were not certified
        std::vector<std::int64_t> careful; // none left when all were done above
        for (std::int64_t c = 0; c < l_.channels && !all_careful; ++c)
            if (careful_[std::size_t(c)]) careful.push_back(c);
        // row by row, so that channels-last data is read once however many channels need it
        // (the same operations on four lanes: four consecutive channels of a row, or four
        // values of a channel's run; the offset form where input_gradient_rows_dd takes it)
        using detail::simd::load, detail::simd::splat, detail::simd::v4d;
        constexpr std::size_t W = detail::simd::kWidth;
        // the coefficients of channel c as lanes: of c..c+3 (load), or c's in each (splat)
        auto coefficients = [&]<class V>(auto lanes, std::int64_t c, bool offset, V (&k)[8]) {
            if (offset) k[0] = lanes(pah + c), k[1] = lanes(pal + c), k[2] = lanes(pKh + c), k[3] = lanes(pKl + c);
            else k[0] = lanes(pmh + c), k[1] = lanes(pml + c), k[2] = lanes(pah + c), k[3] = lanes(pal + c);
            k[4] = lanes(pBh + c), k[5] = lanes(pBl + c), k[6] = lanes(pHh + c), k[7] = lanes(pHl + c);
        };
        auto dx_of = []<class V>(V x, V g, bool offset, const V (&k)[8]) {
            return offset ? input_gradient_offset_dd(x, g, k[0], k[1], k[2], k[3], k[6], k[7])
                          : input_gradient_dd(x, g, k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]);
        };
        auto four = [&](std::int64_t off, bool offset, const v4d (&k)[8]) {
            detail::simd::store(dx + (off - base), dx_of(load(x_ + off), load(dy_ + off), offset, k));
        };
        auto one = [&](std::int64_t off, std::int64_t c) {
            double k[8];
            const bool offset = offset_form_[std::size_t(c)];
            coefficients([](const double* p) { return *p; }, c, offset, k);
            dx[off - base] = float(dx_of(double(x_[off]), double(dy_[off]), offset, k));
        };
        auto row = [&](std::int64_t o) {
            for (std::size_t i = 0; i < careful.size();) {
                const std::int64_t c = careful[i], off = (o * whole_ + c) * l_.inner;
                v4d k[8];
                if (l_.inner == 1 && i + W <= careful.size() && careful[i + W - 1] == c + std::int64_t(W) - 1) {
                    const bool offset = offset_form4_[std::size_t(c)];
                    coefficients([](const double* p) { return load(p); }, c, offset, k);
                    four(off, offset, k), i += W;
                    continue;
                }
                const bool offset = offset_form_[std::size_t(c)];
                coefficients([](const double* p) { return splat(*p); }, c, offset, k);
                std::int64_t j = 0;
                for (; l_.inner > 1 && j + std::int64_t(W) <= l_.inner; j += std::int64_t(W)) four(off + j, offset, k);
                for (; j < l_.inner; ++j) one(off + j, c);
                ++i;
            }
        };
        if (!careful.empty()) {
            const std::int64_t grain = std::max<std::int64_t>(1, kPassBChunk<T> / (l_.channels * l_.inner));
            detail::parallel_chunks(o1 - o0, grain, threads_for_rows(l_, o0, o1, threads_),
                                    [&](std::int64_t b, std::int64_t e) {
                                        for (std::int64_t o = o0 + b; o < o0 + e; ++o) row(o);
                                    });
        }
    }
    if (!exact_.empty()) take_slow_channels(l_, whole_, fast_, exact_.data(), dx, o0, o1);
}

template struct BackwardState<float>;
template struct BackwardState<double>;

} // namespace detail

template <class T>
BackwardPass<T>::BackwardPass(const T* x, const T* gamma, const T* dy, const Layout& l, double eps, int threads)
    : s_(std::make_unique<detail::BackwardState<T>>(x, gamma, dy, l, l.channels, 0, eps, threads)) {}
template <class T> BackwardPass<T>::~BackwardPass() = default;
template <class T> BackwardPass<T>::BackwardPass(BackwardPass&&) noexcept = default;
template <class T> BackwardPass<T>& BackwardPass<T>::operator=(BackwardPass&&) noexcept = default;
template <class T> void BackwardPass<T>::gradients(T* dgamma, T* dbeta) const { s_->gradients(dgamma, dbeta); }
template <class T> void BackwardPass<T>::apply(std::int64_t o0, std::int64_t o1, T* dx) const { s_->apply(o0, o1, dx); }
template <class T> bool BackwardPass<T>::inputs_proven_finite() const { return s_->inputs_proven_finite(); }

template class BackwardPass<float>;
template class BackwardPass<double>;

} // namespace bnorm
