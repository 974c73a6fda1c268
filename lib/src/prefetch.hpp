// Software prefetch: of a line ahead of a stream, and of the next tile of channels-last rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

/// Asks for the line of p[n] in L1 (Locality 3) or L2 (2) soon. p[n] may lie past the end
/// of the array: a prefetch never faults, and the address is formed as an integer, not as
/// a pointer past the array.
template <int Locality, class T> inline void prefetch_line(const T* p, std::int64_t n) {
    const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(p) + std::uintptr_t(n) * sizeof(T);
    __builtin_prefetch(reinterpret_cast<const void*>(at), 0, Locality);
}
template <class T> inline void prefetch_l1(const T* p, std::int64_t n) { prefetch_line<3>(p, n); }
template <class T> inline void prefetch_l2(const T* p, std::int64_t n) { prefetch_line<2>(p, n); }

/// Whether one line per row of a tile (`rows` rows `stride_bytes` apart, in each of
/// `arrays` arrays) crowds more than 8 lines into one set of an L1 of 64 sets (Zen 4's
/// 32 KiB 8-way, Zen 5's and Ice Lake's 48 KiB 12-way): row strides of a multiple of
/// 1 KiB, such as 256 float64 channels. A chunk's lines then evict each other between
/// its first look and its sums, which read them from L2 again.
inline bool crowds_l1_sets(std::int64_t stride_bytes, std::int64_t rows, int arrays) {
    if (stride_bytes % 64 != 0) return false; // rows off the lines' grid: their lines spread
    const std::int64_t sets = std::min(rows, 64 / std::gcd(stride_bytes / 64 % 64, std::int64_t(64)));
    return (rows + sets - 1) / sets * arrays > 8;
}

/// Software prefetch of the next tile, a chunk's row per step, in address order. The
/// tile kernel walks a tile channel chunk by channel chunk, down the rows, which the
/// hardware prefetchers do not follow; this streams the next tile in meanwhile, into L2
/// (prefetching into L1 evicts the tile being summed).
template <class T> struct TilePrefetch {
    const T *x = nullptr, *g = nullptr; // the next tile of x and dy, or null
    std::int64_t at = 0, size = 0;     // the next element to prefetch, the tile's size
    /// The tile of up to `rows` rows from row `next` of x (and dy, when not null), rows
    /// `stride` values apart, when there is one before o1 and it is contiguous (whole rows:
    /// count == stride); else none.
    static TilePrefetch next_tile(const T* x, const T* dy, std::int64_t stride, std::int64_t count,
                                  std::int64_t next, std::int64_t o1, std::int64_t rows) {
        TilePrefetch p;
        if (next < o1 && count == stride) {
            p.x = x + next * stride, p.g = dy ? dy + next * stride : nullptr;
            p.size = std::min(rows, o1 - next) * stride;
        }
        return p;
    }
    /// Prefetches the lines of the next n elements. A step shorter than a line asks for
    /// the line of its first element, again at each step that falls in it: a few
    /// instructions, where finding the steps that start a line took a dozen. The addresses
    /// are formed as integers: a step may reach past the tile, and a prefetch never faults.
    template <std::int64_t n> void step() {
        constexpr std::int64_t per_line = 64 / std::int64_t(sizeof(T));
        if (at < size) {
            for (std::int64_t i = 0; i < std::max(n / per_line, std::int64_t(1)); ++i) { // (unrolled)
                prefetch_l2(x, at + i * per_line);
                if (g) prefetch_l2(g, at + i * per_line);
            }
        }
        at += n;
    }
};

} // namespace
} // namespace bnorm::kernels
