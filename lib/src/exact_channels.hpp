// The channels the exact kernel computes in place of the fast path: their inputs gathered
// when they are a group's, their outputs put in place.
#pragma once

#include "bnorm/layout.hpp"
#include <algorithm>
#include <cstdint>
#include <vector>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

/// dst[o, c, k] = src[o, c, k] for outer rows [o0, o1) of the channels that are not fast;
/// src is the whole tensor (l, contiguous), dst holds rows [o0, o1) only, `whole`
/// channels apart (as in Blocks).
template <class T>
void take_slow_channels(const Layout& l, std::int64_t whole, const std::vector<char>& fast, const T* src, T* dst,
                        std::int64_t o0, std::int64_t o1) {
    for (std::int64_t o = o0; o < o1; ++o)
        for (std::int64_t c = 0; c < l.channels; ++c)
            if (!fast[c]) {
                const std::int64_t from = (o * l.channels + c) * l.inner, to = ((o - o0) * whole + c) * l.inner;
                std::copy(src + from, src + from + l.inner, dst + to);
            }
}

/// The channels of a group (x at its first channel, rows whole·inner values apart) as a
/// contiguous tensor of l, for the exact kernel; empty when x is contiguous already.
template <class T> std::vector<T> contiguous_copy(const T* x, const Layout& l, std::int64_t whole) {
    if (whole == l.channels || x == nullptr) return {};
    std::vector<T> copy(std::size_t(l.size()));
    for (std::int64_t o = 0; o < l.outer; ++o)
        std::copy(x + o * whole * l.inner, x + (o * whole + l.channels) * l.inner,
                  copy.begin() + o * l.channels * l.inner);
    return copy;
}

} // namespace
} // namespace bnorm::kernels
