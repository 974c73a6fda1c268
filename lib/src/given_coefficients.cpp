// Pass B alone, with per-channel coefficients the caller computed: the family's sets
// (family_sets.cpp) take their statistics over several channels of a layout, merge them,
// and hand each channel its μ, a = γ·invstd, β (and B, H for dx) to these passes, whose
// kernels are batch norm's. Like the inference constructors of running.cpp, with
// training's formulas.
#include "lanes.hpp"
#include "pass_b/rows.hpp"
#include "pass_state.hpp"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <vector>

namespace bnorm::detail {

using kernels::line_arrays, kernels::padded, kernels::threads_for;

template <class T>
ForwardState<T>::ForwardState(const T* x, const Layout& l, const GivenForward& k, int threads)
    : x_(x), gamma_(nullptr), beta_(nullptr), l_(l), whole_(l.channels), eps_(0),
      threads_(threads_for(l, threads)) {
    assert(l.channels >= 1);
    const std::size_t C = std::size_t(l.channels), P = padded(C);
    double* out = line_arrays(coefficients_, 5, C); // μ (hi, lo), a (hi, lo), β: apply's order
    for (const double* in : {k.mu_hi, k.mu_lo, k.a_hi, k.a_lo, k.beta}) std::copy(in, in + C, out), out += P;
    fast_.assign(C, 1);
    stream_bytes_ = k.stream_bytes, stream_from_ = k.stream_from;
}

template <class T>
BackwardState<T>::BackwardState(const T* x, const T* dy, const Layout& l, const GivenBackward& k, int threads)
    : x_(x), gamma_(nullptr), dy_(dy), l_(l), whole_(l.channels), eps_(0), threads_(threads_for(l, threads)) {
    assert(l.channels >= 1);
    const std::size_t C = std::size_t(l.channels), P = padded(C);
    stream_bytes_ = k.stream_bytes, stream_from_ = k.stream_from;
    fast_.assign(C, 1);
    careful_.assign(C, 0);
    if (sizeof(T) == 4) std::copy(k.careful, k.careful + C, careful_.begin());
    // apply's layout: μ, a, B, H, K (hi, lo each); K = B − μ·H for the double-double rows
    // (float64, and float32 with careful channels), whose offset form is not taken here
    // (it needs |μ| ≤ 4σ of the channel, and a channel here is part of a set)
    const bool with_K = sizeof(T) == 8 || std::any_of(careful_.begin(), careful_.end(), [](char c) { return c; });
    if (with_K) offset_form_.assign(C, 0), offset_form4_.assign(C, 0);
    double* out = line_arrays(coefficients_, 10, C);
    for (const double* in : {k.mu_hi, k.mu_lo, k.a_hi, k.a_lo, k.B_hi, k.B_lo, k.H_hi, k.H_lo})
        std::copy(in, in + C, out), out += P;
    for (std::size_t c = 0; c < C; ++c) {
        const dd K = sub(dd{k.B_hi[c], k.B_lo[c]}, mul(dd{k.mu_hi[c], k.mu_lo[c]}, dd{k.H_hi[c], k.H_lo[c]}));
        out[c] = K.hi, out[P + c] = K.lo;
    }
}

template ForwardState<float>::ForwardState(const float*, const Layout&, const GivenForward&, int);
template ForwardState<double>::ForwardState(const double*, const Layout&, const GivenForward&, int);
template BackwardState<float>::BackwardState(const float*, const float*, const Layout&, const GivenBackward&, int);
template BackwardState<double>::BackwardState(const double*, const double*, const Layout&, const GivenBackward&, int);

} // namespace bnorm::detail
