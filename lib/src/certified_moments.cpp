// Pass A's glue: the blocks of a tensor summed on the threads with the kernels of one
// summation, merged per channel, and certified channel by channel in stages.
#include "certified_moments.hpp"

#include "blocks.hpp"
#include "certificates.hpp"
#include "lanes.hpp"
#include "parallel.hpp"
#include "stats/biased_sums.hpp"
#include "stats/expansion.hpp"
#include "stats/exact_sums.hpp"
#include "stats/moments.hpp"
#include "stats/plain_sums.hpp"
#include "stats/summation.hpp"
#include "stats/sums.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace bnorm::kernels {
namespace {

/// The totals of per-block Moments (block b's channel c at b·C + c), merged block by block
/// in order, four channels at a time where every block has them (the same bits as one at
/// a time), on threads when there are many.
MomentsVector merged_blocks(const MomentsVector& per_block, std::int64_t count, std::size_t C, int threads) {
    using detail::simd::v4d;
    constexpr auto W = std::size_t(detail::simd::kWidth);
    MomentsVector total(C);
    const auto at = [&](std::int64_t b, std::size_t c) { return &per_block[std::size_t(b) * C + c]; };
    const auto groups = std::int64_t((C + W - 1) / W);
    const int merging_threads = count * std::int64_t(C) >= 16384 ? threads : 1; // else not worth a thread
    detail::parallel_for(groups, merging_threads, [&](std::int64_t g0, std::int64_t g1) {
        for (std::size_t c = std::size_t(g0) * W; c < std::min(C, std::size_t(g1) * W); c += W) {
            bool lanes = c + W <= C;
            for (std::int64_t b = 0; b < count && lanes; ++b)
                for (std::size_t j = 0; j < W; ++j) lanes = lanes && at(b, c)[j].n != 0;
            if (lanes) {
                MomentsOf<v4d> t = MomentsOf<v4d>::gather(at(0, c));
                for (std::int64_t b = 1; b < count; ++b) t.combine(MomentsOf<v4d>::gather(at(b, c)));
                t.scatter(&total[c]);
            } else {
                for (std::size_t j = c; j < std::min(C, c + W); ++j)
                    for (std::int64_t b = 0; b < count; ++b) total[j].merge(*at(b, j));
            }
        }
    });
    return total;
}

/// Adds one run of `len` values of channel c (slot c of t) with the kernels of `How`.
template <class T, bool Backward, Summation How>
inline void add_run_as(const T* v, const T* g, std::int64_t len, std::size_t c, Sums& t) {
    if constexpr (How == Summation::plain) add_run_plain<T, Backward>(v, g, len, c, t);
    else if constexpr (How == Summation::exact) add_run<T, Backward>(v, g, len, c, t);
    else add_run_biased<T, Backward, How == Summation::centred>(v, g, len, c, t);
}

/// The block's sums as Moments into out[0, C), four channels at a time where all four
/// were summed.
template <bool Backward, Summation How> void block_moments(const Sums& sums, std::size_t C, bool rows, Moments* out) {
    constexpr bool Plain = How == Summation::plain, Biased = How == Summation::biased || How == Summation::centred;
    const auto counted = [&](std::size_t c) { // a block may hold only some channels
        return sums.n[c] != 0 && sums.n[c + 1] != 0 && sums.n[c + 2] != 0 && sums.n[c + 3] != 0;
    };
    for_channel_lanes(C, counted, [&](std::size_t c, auto lanes_type) {
        using D = decltype(lanes_type);
        if (sums.n[c] == 0) return;
        const D rel = Biased ? biased_rel(lanes<D>(sums.folds, c), rows ? kRowTile : kRunTile)
                             : detail::broadcast<D>(Plain ? kPlainGamma : 0.0);
        MomentsOf<D>::of(sums, c, Backward, rel).scatter(out + c);
    });
}

/// channel_moments where each block holds whole channels of its own (one row of outer, cut
/// by runs: NCHW with N = 1, as the family's sets): the block's sums sized to its channels
/// and written straight to the totals, with no per-block copy of every channel to zero and
/// merge. The same bits: merging a channel's one block into empty Moments copies it.
template <class T, bool Backward, Summation How>
[[gnu::noinline]] MomentsVector disjoint_moments(const T* x, const T* dy, const Layout& l, const Blocks& blocks,
                                                 int threads, const double* centres) {
    MomentsVector total(static_cast<std::size_t>(l.channels));
    detail::parallel_chunks(blocks.count, 1, threads, [&](std::int64_t b0, std::int64_t b1) {
        Sums sums;
        for (std::int64_t b = b0; b < b1; ++b) {
            const std::int64_t c0 = b * blocks.per_block, n = std::min(l.channels, c0 + blocks.per_block) - c0;
            sums.reset(std::size_t(n), Backward);
            if constexpr (How == Summation::centred) std::copy(centres + c0, centres + c0 + n, sums.K);
            for (std::int64_t c = c0; c < c0 + n; ++c) {
                const std::int64_t off = c * l.inner;
                add_run_as<T, Backward, How>(x + off, Backward ? dy + off : nullptr, l.inner, std::size_t(c - c0), sums);
            }
            block_moments<Backward, How>(sums, std::size_t(n), false, total.data() + c0);
        }
    });
    return total;
}

/// Pass A over the whole tensor: the Moments of every channel, with the kernels of `How`;
/// the threads take the blocks as they come (parallel_chunks), each into its own slot.
template <class T, bool Backward, Summation How>
MomentsVector channel_moments(const T* x, const T* dy, const Layout& l, const Blocks& blocks, int threads,
                              const double* centres = nullptr) {
    constexpr bool Plain = How == Summation::plain, Centred = How == Summation::centred;
    constexpr bool Biased = How == Summation::biased || Centred;
    const auto C = std::size_t(l.channels);
    if (!blocks.whole_rows && l.outer == 1) return disjoint_moments<T, Backward, How>(x, dy, l, blocks, threads, centres);
    MomentsVector per_block(std::size_t(blocks.count) * C);
    detail::parallel_chunks(blocks.count, 1, threads, [&](std::int64_t b0, std::int64_t b1) {
        Sums sums;
        for (std::int64_t b = b0; b < b1; ++b) {
            sums.reset(C, Backward);
            if constexpr (Centred) std::copy(centres, centres + C, sums.K);
            const bool rows = blocks.whole_rows && l.inner == 1; // else runs (of one value, when inner == 1)
            if (rows) {
                const auto [o0, o1] = blocks.rows(b);
                if constexpr (Plain) add_rows_plain<T, Backward>(x, dy, l.channels, o0, o1, sums);
                else if constexpr (Biased)
                    add_rows_biased<T, Backward, Centred>(x, dy, l.channels, l.channels, o0, o1, sums);
                else add_rows<T, Backward>(x, dy, l.channels, l.channels, o0, o1, sums);
            } else {
                blocks.for_runs(b, [&](std::int64_t off, std::int64_t c) {
                    add_run_as<T, Backward, How>(x + off, Backward ? dy + off : nullptr, l.inner, std::size_t(c), sums);
                });
            }
            block_moments<Backward, How>(sums, C, rows, per_block.data() + std::size_t(b) * C);
        }
    });
    if (blocks.count == 1) return per_block; // the totals already (a merge into empty Moments copies)
    return merged_blocks(per_block, blocks.count, C, threads);
}

/// The Moments of channel c alone with the error-free or the biased kernels: the same
/// bits as channel_moments<T, Backward, How> gives for c, reading only c's values.
template <class T, bool Backward, Summation How>
Moments one_channel_moments(const T* x, const T* dy, const Layout& l, const Blocks& blocks, std::int64_t c,
                            const double* centres = nullptr) {
    static_assert(How != Summation::plain, "the plain kernels are only run over every channel");
    constexpr bool Centred = How == Summation::centred, Biased = How == Summation::biased || Centred;
    Moments total;
    Sums sums;
    for (std::int64_t b = 0; b < blocks.count; ++b) {
        sums.reset(1, Backward);
        if constexpr (Centred) sums.K[0] = centres[c];
        const bool rows = blocks.whole_rows && l.inner == 1;
        if (rows) {
            const auto [o0, o1] = blocks.rows(b);
            const T* g = Backward ? dy + c : nullptr;
            if constexpr (Biased) add_rows_biased<T, Backward, Centred>(x + c, g, l.channels, 1, o0, o1, sums);
            else add_rows<T, Backward>(x + c, g, l.channels, 1, o0, o1, sums);
        } else {
            blocks.for_runs(b, [&](std::int64_t off, std::int64_t run_c) {
                if (run_c == c) add_run_as<T, Backward, How>(x + off, Backward ? dy + off : nullptr, l.inner, 0, sums);
            });
        }
        const double rel = Biased ? biased_rel(sums.folds[0], rows ? kRowTile : kRunTile) : 0.0;
        if (sums.n[0] != 0) total.merge(Moments::of(sums, 0, Backward, rel));
    }
    return total;
}

/// The channels `todo` of ms summed again with the kernels of `How`, each with the bits
/// channel_moments<T, Backward, How> gives it. One channel of channels-last data is read
/// with a stride, which touches every line of the tensor: beyond one such channel, one
/// pass over all of them costs less.
template <class T, bool Backward, Summation How>
[[gnu::noinline]] void sum_again(const T* x, const T* dy, const Layout& l, const Blocks& blocks, int threads,
               const std::vector<std::int64_t>& todo, MomentsVector& ms, const double* centres = nullptr) {
    if (l.inner == 1 && todo.size() > 1) {
        const MomentsVector all = channel_moments<T, Backward, How>(x, dy, l, blocks, threads, centres);
        for (std::int64_t c : todo) ms[std::size_t(c)] = all[std::size_t(c)];
        return;
    }
    detail::parallel_for(std::int64_t(todo.size()), threads, [&](std::int64_t i0, std::int64_t i1) {
        for (std::int64_t i = i0; i < i1; ++i)
            ms[std::size_t(todo[i])] = one_channel_moments<T, Backward, How>(x, dy, l, blocks, todo[i], centres);
    });
}

/// The least number of blocks for which certified_moments previews the first stage.
constexpr std::int64_t kPreviewBlocks = 4;

/// The preview of certified_moments' first stage (`first`) on an eighth of the first
/// block: its moments into `preview`, and per channel whether it starts at the second
/// stage (it fails the first there and, float64, could be summed centred). Apart, and
/// certifying one channel at a time (the same result as four at a time): sharing the
/// certificate loop with certified_moments took it out of line there, which slowed the
/// tiny calls that never preview.
template <class T, bool Backward, Summation First>
[[gnu::noinline]] std::vector<char> first_stage_preview(const T* x, const T* dy, const Layout& l, const Blocks& blocks,
                                                        double eps, const Tolerance& tol, double dy_rel,
                                                        MomentsVector& preview) {
    const Layout rows{blocks.per_block / 8, l.channels, l.inner};
    preview = channel_moments<T, Backward, First>(x, dy, rows, Blocks(rows, (Backward ? 2 : 1) * sizeof(T), blocks.whole),
                                                  1);
    std::vector<char> skip(preview.size());
    for (std::size_t c = 0; c < skip.size(); ++c) {
        const Moments& m = preview[c];
        skip[c] = !certified<Backward>(m, eps, tol, dy_rel) && (sizeof(T) == 4 || m.max_abs <= 2 * std::abs(m.mean.hi));
    }
    return skip;
}

/// The error-free sums keep the mean to Sum2's bound, ~(n·u)² of Σ|x − K| ≤ √(n·sq):
/// where values that cancel leave a mean far below that (±1e40 and 1 in one channel), a
/// channel of todo whose bound is not within `scalar` of |μ| takes Σx exactly (LongSum),
/// divided by n once. M2 is kept: it moves by far less than its own error.
template <class T>
void exact_means(const T* x, const Blocks& blocks, const std::vector<std::int64_t>& todo, MomentsVector& ms,
                 double scalar) {
    const Layout& l = blocks.l;
    for (const std::int64_t c : todo) {
        Moments& m = ms[std::size_t(c)];
        const double nu = m.n * 0x1p-53;
        const double bound = 4 * nu * nu * std::sqrt(m.sq / m.n) + 0x1p-102 * std::abs(m.mean.hi);
        if (!std::isfinite(m.mean.hi) || bound <= scalar * std::abs(m.mean.hi)) continue;
        detail::LongSum s;
        bool finite = true;
        for (std::int64_t o = 0; o < l.outer && finite; ++o)
            for (std::int64_t k = 0, at = (o * blocks.whole + c) * l.inner; k < l.inner; ++k) {
                const double v = double(x[at + k]);
                if (!std::isfinite(v)) finite = false;
                else s.add(v);
            }
        const dd sum = detail::expansion::to_dd(detail::expansion::compressed(s.expansion()));
        if (finite && std::isfinite(sum.hi)) m.mean = div(sum, m.n);
    }
}

} // namespace

template <class T, bool Backward>
MomentsVector certified_moments(const T* x, const T* dy, const Layout& l, std::int64_t whole, double eps, int threads,
                                std::vector<Certified>& how) {
    const Blocks blocks(l, (Backward ? 2 : 1) * sizeof(T), whole);
    constexpr bool is_float = sizeof(T) == 4;
    constexpr Summation first = is_float ? Summation::plain : Summation::biased;
    const Tolerance& tol = is_float ? kFloat32Tolerance : kFloat64Tolerance;
    const bool rows = blocks.whole_rows && l.inner == 1; // which kernels: for Σdy²'s bound
    // A preview of the first stage on the first rows (an eighth of the first block, in
    // tensors of at least kPreviewBlocks blocks of whole rows). A channel that fails it,
    // and (float64) could be summed centred, starts at the second stage, with the
    // preview's moments (float64: its mean as the centre): it would most likely fail the
    // first stage too (dy nearly linear in x, data far from 0 against its spread). When
    // every channel does, the first stage's pass is saved. Every stage is certified as
    // before: the preview decides the cost, never the accuracy; and a channel's route
    // depends on its own data only. On ordinary data the preview costs 1/(8·blocks) of a
    // pass.
    MomentsVector preview_ms;
    std::vector<char> skip; // per channel: straight to the second stage
    if (blocks.count >= kPreviewBlocks && blocks.whole_rows && blocks.per_block >= 8)
        skip = first_stage_preview<T, Backward, first>(x, dy, l, blocks, eps, tol, dy_squares_rel(first, rows),
                                                       preview_ms);
    MomentsVector ms;
    if (!skip.empty() && std::all_of(skip.begin(), skip.end(), [](char k) { return k; })) {
        ms = std::move(preview_ms);
        how.assign(ms.size(), Certified::exact);
    } else {
        ms = channel_moments<T, Backward, first>(x, dy, l, blocks, threads);
        // every channel, four at a time (the same result as one at a time)
        how.resize(ms.size());
        for_channel_lanes(ms.size(), [](std::size_t) { return true; }, [&](std::size_t c, auto lanes_type) {
            using D = decltype(lanes_type);
            const mask_of<D> ok =
                certified<Backward>(MomentsOf<D>::gather(&ms[c]), eps, tol, dy_squares_rel(first, rows));
            for (int j = 0; j < kLanesOf<D>; ++j) how[c + j] = ok_lane(ok, j) ? Certified::fast : Certified::exact;
        });
        for (std::size_t c = 0; c < skip.size(); ++c)
            if (skip[c]) ms[c] = preview_ms[c], how[c] = Certified::exact;
    }
    std::vector<std::int64_t> todo;
    for (std::size_t c = 0; c < ms.size(); ++c)
        if (how[c] != Certified::fast) todo.push_back(std::int64_t(c));
    if constexpr (is_float) {
        if (!todo.empty()) { // float32: the biased sums, certified for pass B in double or in double-double
            sum_again<T, Backward, Summation::biased>(x, dy, l, blocks, threads, todo, ms);
            const double dy_rel = dy_squares_rel(Summation::biased, rows);
            std::vector<std::int64_t> left;
            for (std::int64_t c : todo) {
                const Moments& m = ms[std::size_t(c)];
                if (certified<Backward>(m, eps, kFloat32Tolerance, dy_rel)) how[std::size_t(c)] = Certified::fast;
                else if (Backward && certified<Backward>(m, eps, kFloat32CarefulTolerance, dy_rel))
                    how[std::size_t(c)] = Certified::careful;
                else left.push_back(c);
            }
            todo = std::move(left);
        }
    } else if (!todo.empty()) { // float64: channels far from 0 against their spread, centred
        // Centred on the mean the biased sums found, x − μ is exact for every x when all of
        // them are within [μ/2, 2μ]; a channel whose largest |x| is beyond 2|μ| cannot pass
        // and is not tried. A tile with a value out of range poisons the channel's sums.
        std::vector<double> centres(ms.size());
        std::vector<std::int64_t> centred, left;
        for (std::int64_t c : todo) {
            const Moments& m = ms[std::size_t(c)];
            centres[std::size_t(c)] = m.mean.hi;
            (m.max_abs <= 2 * std::abs(m.mean.hi) ? centred : left).push_back(c);
        }
        if (!centred.empty()) {
            sum_again<T, Backward, Summation::centred>(x, dy, l, blocks, threads, centred, ms, centres.data());
            const double dy_rel = dy_squares_rel(Summation::centred, rows);
            for (std::int64_t c : centred)
                if (certified<Backward>(ms[std::size_t(c)], eps, tol, dy_rel)) how[std::size_t(c)] = Certified::fast;
                else left.push_back(c);
            std::sort(left.begin(), left.end());
        }
        todo = std::move(left);
    }
    if (!todo.empty()) {
        sum_again<T, Backward, Summation::exact>(x, dy, l, blocks, threads, todo, ms);
        exact_means(x, blocks, todo, ms, tol.scalar);
    }
    return ms;
}

template <class T, bool Backward>
void exact_moments(const T* x, const T* dy, const Layout& l, std::int64_t whole, int threads,
                   const std::vector<std::int64_t>& todo, MomentsVector& ms) {
    if (todo.empty()) return;
    const Blocks blocks(l, (Backward ? 2 : 1) * sizeof(T), whole);
    sum_again<T, Backward, Summation::exact>(x, dy, l, blocks, threads, todo, ms);
    exact_means(x, blocks, todo, ms, (sizeof(T) == 4 ? kFloat32Tolerance : kFloat64Tolerance).scalar);
}

template MomentsVector certified_moments<float, false>(const float*, const float*, const Layout&, std::int64_t, double,
                                                       int, std::vector<Certified>&);
template MomentsVector certified_moments<float, true>(const float*, const float*, const Layout&, std::int64_t, double,
                                                      int, std::vector<Certified>&);
template MomentsVector certified_moments<double, false>(const double*, const double*, const Layout&, std::int64_t,
                                                        double, int, std::vector<Certified>&);
template MomentsVector certified_moments<double, true>(const double*, const double*, const Layout&, std::int64_t,
                                                       double, int, std::vector<Certified>&);

#define BNORM_EXACT_MOMENTS(T, B)                                                                                   \
    template void exact_moments<T, B>(const T*, const T*, const Layout&, std::int64_t, int,                          \
                                      const std::vector<std::int64_t>&, MomentsVector&);
BNORM_EXACT_MOMENTS(float, false)
BNORM_EXACT_MOMENTS(float, true)
BNORM_EXACT_MOMENTS(double, false)
BNORM_EXACT_MOMENTS(double, true)
#undef BNORM_EXACT_MOMENTS

} // namespace bnorm::kernels
