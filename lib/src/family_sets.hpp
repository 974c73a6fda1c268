// The view behind instance and group norm (family_sets.cpp, family_sets_backward.cpp):
// the sets of a NormProblem as runs of consecutive channels of batch norm's layouts, the
// pieces of x that one pass A and one pass B take, and the per-set helpers. Internal.
#pragma once

#include "batchnorm_exact.hpp"
#include "bnorm/error.hpp"
#include "bnorm/family.hpp"
#include "channel_groups.hpp"
#include "ddouble.hpp"
#include "parallel.hpp"
#include "simd.hpp"
#include "stats/moments.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace bnorm::family {
namespace { // each .cpp its own copy, optimised with its callers as one unit

using detail::dd;
using kernels::Moments;
using kernels::MomentsVector;

/// The sets of a NormProblem as runs of `per` channels of batch norm's layouts.
struct View {
    std::int64_t N, P, C, inner;
    std::int64_t per;        // channels per set: C/G, or 1 (instance)
    std::int64_t per_sample; // sets per sample: G, or C
    bool group;

    explicit View(const NormProblem& p)
        : N(p.samples), P(p.middle), C(p.channels), inner(p.inner), per(p.norm == Norm::group ? C / p.groups : 1),
          per_sample(C / per), group(p.norm == Norm::group) {}

    /// "(sample n, group g)" or "(sample n, channel c)" for global set s = n·per_sample + g.
    std::string set_name(std::int64_t s) const {
        return fmt::format("(sample {}, {} {})", s / per_sample, group ? "group" : "channel", s % per_sample);
    }
};

/// A piece of x that one pass A and one pass B take: batch norm's layout l at x + offset,
/// whose channel j is the global channel q0 + j = n·C + c, and holds whole sets. Its
/// output is part of `output_values` written in turn (pass B streams it when they are
/// many): the whole tensor's for P = 1, else the piece's own.
struct Piece {
    std::int64_t offset;
    Layout l;
    std::int64_t q0;
    std::int64_t output_values;
};

/// Pass B streams the pieces' y and dx from 16 MiB on every machine, not from
/// detail::stream_threshold(): a piece's pass A has just filled the cache with its inputs,
/// and in ordinary stores instance norm's (32, 64, 56, 56) float32 took 1.04 to 1.33 of the
/// streamed time (Zen 5 guest, docs/performance.md).
constexpr std::int64_t kStreamSets = 16 << 20;

/// Calls f(piece, threads) for pieces covering x: P = 1, one piece, or (inputs of
/// detail::piece_threshold() bytes or more, sets up to detail::kLargestGroupBytes) pieces of whole
/// sets of about detail::piece_bytes() on the threads; P > 1, one piece per sample, on the
/// threads when samples are small. The cut depends on the shape and the machine's caches,
/// the bits on neither: every channel's bits are those of its own values, whatever the
/// thread count and the cut. Forward and backward alike: a set's two passes then read it
/// from L2, not the L3, and the threads take whole pieces.
template <class F> void for_pieces(const View& v, std::int64_t input_bytes, int threads, F&& f) {
    const std::int64_t total = v.N * v.P * v.C * v.inner;
    threads = total < (1 << 16) ? 1 : detail::resolve_threads(threads);
    if (v.P == 1) {
        const std::int64_t sets = v.N * v.per_sample, set_bytes = v.per * v.inner * input_bytes;
        // (a larger set would not stay in L2 anyway: the whole tensor as one piece then, so
        // that a few large sets still take every thread)
        const bool whole = total * input_bytes < detail::piece_threshold() || set_bytes > detail::kLargestGroupBytes;
        const std::int64_t per_piece = whole ? sets : std::max<std::int64_t>(1, detail::piece_bytes() / set_bytes);
        const std::int64_t pieces = (sets + per_piece - 1) / per_piece;
        const auto piece = [&](std::int64_t i) {
            const std::int64_t s0 = i * per_piece, q0 = s0 * v.per;
            return Piece{q0 * v.inner, Layout{1, std::min(per_piece, sets - s0) * v.per, v.inner}, q0, total};
        };
        if (pieces == 1) return f(piece(0), threads);
        detail::parallel_chunks(pieces, 1, threads, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t i = b; i < e; ++i) f(piece(i), 1);
        });
        return;
    }
    const std::int64_t sample = v.P * v.C * v.inner;
    const auto piece = [&](std::int64_t n) { return Piece{n * sample, Layout{v.P, v.C, v.inner}, n * v.C, sample}; };
    if (sample < (1 << 16) && threads > 1)
        detail::parallel_chunks(v.N, 1, threads, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t n = b; n < e; ++n) f(piece(n), 1);
        });
    else
        for (std::int64_t n = 0; n < v.N; ++n) f(piece(n), threads);
}

/// Calls f(offset, count) for the runs of contiguous values of set j0..j0+per of piece
/// layout l (one per outer row).
template <class F> void for_set_runs(const View& v, const Layout& l, std::int64_t j0, F&& f) {
    for (std::int64_t o = 0; o < l.outer; ++o) f((o * l.channels + j0) * l.inner, v.per * l.inner);
}

/// With eps = 0 a constant set has var + eps = 0: refused, naming it, before any output
/// is written. A set's scan stops at its first value unlike the first (at once, for
/// ordinary data).
template <class T> void refuse_constant_sets(const View& v, const T* x) {
    const Layout whole{v.N * v.P, v.C, v.inner};
    for (std::int64_t n = 0; n < v.N; ++n)
        for (std::int64_t g = 0; g < v.per_sample; ++g) {
            const T first = x[(n * v.P * v.C + g * v.per) * v.inner];
            bool constant = std::isfinite(double(first));
            for (std::int64_t p = 0; p < v.P && constant; ++p) {
                const T* run = x + ((n * v.P + p) * whole.channels + g * v.per) * v.inner;
                constant = std::all_of(run, run + v.per * v.inner, [&](T e) { return e == first; });
            }
            if (constant)
                throw InputError(fmt::format("set {} is constant and eps = 0: invstd = 1/sqrt(var + eps) is infinite "
                                             "(use eps > 0)",
                                             v.set_name(n * v.per_sample + g)));
        }
}

/// The moments of a set: its channels' merged (Chan), in channel order.
Moments merged(const MomentsVector& ms, std::int64_t j0, std::int64_t per) {
    Moments m = ms[std::size_t(j0)];
    for (std::int64_t j = 1; j < per; ++j) m.merge(ms[std::size_t(j0 + j)]);
    return m;
}

/// invstd = 1/sqrt(M2/m + eps) in double-double, as batch norm's inverse_std.
dd inverse_std(const Moments& m, double eps) { return detail::rsqrt(detail::add(detail::div(m.m2, m.n), eps)); }

/// inverse_std of each set's moments, eight sets at a time in a v8d's lanes: the same
/// operations lane by lane, so the same bits, where one set at a time each waited on the
/// last one's divisions and square root (instance norm has thousands of sets). Lanes whose
/// var + eps is not positive and finite (sets the caller does not use, or refuses) go one
/// at a time, as rsqrt's lanes need.
std::vector<dd> inverse_stds(const std::vector<Moments>& ms, double eps) {
    using detail::simd::v8d;
    constexpr int W = 8;
    std::vector<dd> r(ms.size());
    std::size_t s = 0;
    for (; s + W <= ms.size(); s += W) {
        double hi[W], lo[W], n[W];
        for (int j = 0; j < W; ++j) hi[j] = ms[s + j].m2.hi, lo[j] = ms[s + j].m2.lo, n[j] = ms[s + j].n;
        const detail::dd_of<v8d> m2{detail::simd::load8(hi), detail::simd::load8(lo)};
        const detail::dd_of<v8d> var_eps =
            detail::add(detail::div(m2, detail::simd::load8(n)), detail::broadcast<v8d>(eps));
        bool lanes = true;
        for (int j = 0; j < W; ++j) lanes = lanes && var_eps.hi[j] > 0 && std::isfinite(var_eps.hi[j]);
        if (!lanes) {
            for (int j = 0; j < W; ++j) r[s + j] = inverse_std(ms[s + j], eps);
            continue;
        }
        const detail::dd_of<v8d> inv = detail::rsqrt(var_eps);
        for (int j = 0; j < W; ++j) r[s + j] = {inv.hi[j], inv.lo[j]};
    }
    for (; s < ms.size(); ++s) r[s] = inverse_std(ms[s], eps);
    return r;
}

bool all_fast(const std::vector<char>& fast, std::int64_t j0, std::int64_t per) {
    return std::all_of(fast.begin() + j0, fast.begin() + j0 + per, [](char f) { return f != 0; });
}

/// The sets whose channels are all in the fast range: each one's moments, merged from its
/// `per` channels' (set s from channel s·per of ms), and its invstd (inverse_stds); both
/// left empty for the other sets.
struct FastSets {
    std::vector<Moments> moments;
    std::vector<dd> inv;
};
FastSets fast_sets(const MomentsVector& ms, const std::vector<char>& fast, std::int64_t sets, std::int64_t per,
                   double eps) {
    FastSets r{std::vector<Moments>(std::size_t(sets)), {}};
    for (std::int64_t s = 0; s < sets; ++s)
        if (all_fast(fast, s * per, per)) r.moments[std::size_t(s)] = merged(ms, s * per, per);
    r.inv = inverse_stds(r.moments, eps);
    return r;
}

double param(const auto* p, std::int64_t c, double absent) { return p ? double(p[c]) : absent; }

/// A set beyond the fast range (non-finite values, float64 magnitudes outside [2^-400,
/// 2^480]) in a contiguous double copy, and its mean, invstd and x̂ from the exact
/// kernel (scaled double-double, any magnitude); NaN and infinities propagate.
struct SlowSet {
    std::vector<double> x, xhat;
    double mean = 0, invstd = 0;

    template <class T> SlowSet(const View& v, const T* xp, const Layout& l, std::int64_t j0, double eps) {
        for_set_runs(v, l, j0, [&](std::int64_t off, std::int64_t count) { x.insert(x.end(), xp + off, xp + off + count); });
        xhat.resize(x.size());
        detail::forward_exact<double>(x.data(), Layout{1, 1, std::int64_t(x.size())}, nullptr, nullptr, eps,
                                      xhat.data(), &mean, &invstd);
    }
    /// Calls f(i, offset in the piece, channel j of the piece) for each value, in x's order.
    template <class F> void each(const View& v, const Layout& l, std::int64_t j0, F&& f) const {
        std::size_t i = 0;
        for_set_runs(v, l, j0, [&](std::int64_t off, std::int64_t count) {
            for (std::int64_t k = 0; k < count; ++k, ++i) f(i, off + k, j0 + k / l.inner);
        });
    }
};

} // namespace
} // namespace bnorm::family
