// Blocks: pass A's units of parallel work, cut from the shape alone so that the bits do
// not depend on the thread count.
#pragma once

#include "bnorm/layout.hpp"
#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

constexpr std::int64_t kBlockBytes = 4 * 1024 * 1024; // pass A's unit of parallel work

/// The tensor (outer, C, inner) is cut into blocks of about kBlockBytes, by whole rows of
/// outer when a row (C·inner values) fits, else by (o, c) runs of `inner` values. The cut
/// depends only on the shape and the element size, never on the thread count.
///
/// A group of channels of a larger tensor (l.channels of its `whole`, x pointing at the
/// first of them, rows whole·inner values apart) is cut as the larger tensor is, which
/// must then be by whole rows: each channel gets the same blocks, and so the same bits.
struct Blocks {
    Layout l;
    std::int64_t whole;  // the channels between one row of outer and the next
    bool whole_rows;
    std::int64_t per_block = 0, count = 0; // rows of outer, or (o, c) runs, per block

    Blocks(const Layout& layout, std::size_t bytes_per_element, std::int64_t whole_channels = 0)
        : l(layout), whole(whole_channels ? whole_channels : layout.channels) {
        const std::int64_t budget = std::max<std::int64_t>(1, kBlockBytes / std::int64_t(bytes_per_element));
        const std::int64_t row = whole * l.inner;
        whole_rows = row <= budget;
        assert(whole_rows || whole == l.channels);
        per_block = whole_rows ? std::max<std::int64_t>(1, budget / row) : std::max<std::int64_t>(1, budget / l.inner);
        const std::int64_t units = whole_rows ? l.outer : l.outer * l.channels;
        count = (units + per_block - 1) / per_block;
    }
    /// Calls run(offset, c) for every (o, c) run of `inner` values in block b, in memory order.
    template <class F> void for_runs(std::int64_t b, F&& run) const {
        const std::int64_t u0 = b * per_block;
        if (whole_rows) {
            const std::int64_t o1 = std::min(l.outer, u0 + per_block);
            for (std::int64_t o = u0; o < o1; ++o)
                for (std::int64_t c = 0; c < l.channels; ++c) run((o * whole + c) * l.inner, c);
        } else {
            const std::int64_t r1 = std::min(l.outer * l.channels, u0 + per_block);
            for (std::int64_t r = u0; r < r1; ++r) run(r * l.inner, r % l.channels);
        }
    }
    /// Rows of outer [o0, o1) of block b (whole_rows only).
    std::pair<std::int64_t, std::int64_t> rows(std::int64_t b) const {
        return {b * per_block, std::min(l.outer, (b + 1) * per_block)};
    }
};

} // namespace
} // namespace bnorm::kernels
