// The two-step passes (ForwardPass, BackwardPass) and the ways forward() and backward() cut
// a tensor: the passes' bits in any chunks of rows, in any order; outputs of 16 MiB or more
// written with streamed stores; channel groups (when a tensor is taken a group of channels
// at a time, and how many) and their bits against the passes over the whole tensor, on one
// thread or two.
#include "naive_batchnorm.hpp"
#include "run_helpers.hpp"

#include "bnorm/batchnorm.hpp"
#include "../lib/src/channel_groups.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <span>

using namespace bnorm;
using namespace bnorm::test;

TEST_CASE("the two-step passes give forward()'s and backward()'s bits, in any chunks, in any order") {
    for (const Shape& shape : {Shape{777, 12}, Shape{9, 5, 11, 13}}) {
        for (bool with_slow_channel : {false, true}) {
            CAPTURE(shape_to_string(shape));
            CAPTURE(with_slow_channel);
            const Layout l = collapse(shape, 1);
            std::mt19937_64 rng(21);
            std::normal_distribution<double> normal;
            std::vector<double> x(l.size()), dy(l.size()), gamma(l.channels, 1.5), beta(l.channels, -0.5);
            for (auto& v : x) v = normal(rng);
            for (auto& v : dy) v = normal(rng);
            if (with_slow_channel) // channel 1 beyond the fast path's range: the exact kernel
                for_channel(x, l, 1, [](double& v) { v *= 1e300; });
            const Outputs<double> whole = run_library(x, gamma, beta, dy, l, 1e-5);

            const ForwardPass<double> fp(x.data(), gamma.data(), beta.data(), l, 1e-5);
            const BackwardPass<double> bp(x.data(), gamma.data(), dy.data(), l, 1e-5);
            std::vector<double> y2(l.size(), kSentinel), dx2(l.size(), kSentinel);
            std::vector<std::int64_t> cuts{0, l.outer};
            for (int i = 0; i < 5; ++i) cuts.push_back(std::int64_t(rng() % std::uint64_t(l.outer)));
            std::sort(cuts.begin(), cuts.end());
            std::vector<std::size_t> order(cuts.size() - 1);
            std::iota(order.begin(), order.end(), 0);
            std::shuffle(order.begin(), order.end(), rng);
            const std::int64_t row = l.channels * l.inner;
            for (std::size_t k : order) {
                fp.apply(cuts[k], cuts[k + 1], y2.data() + cuts[k] * row);
                bp.apply(cuts[k], cuts[k + 1], dx2.data() + cuts[k] * row);
            }
            CHECK(y2 == whole.y);
            CHECK(dx2 == whole.dx);
        }
    }
}

namespace {

/// Outputs of 16 MiB or more are written with non-temporal stores, by kernels of their
/// own: forward and backward on such a tensor against the naive reference, and against
/// the two-step passes' small pieces (stored normally), bit for bit. The outputs start
/// `shift` elements past a 64-byte boundary (the kernels take another way when the
/// output is not on a vector's boundary).
template <class T> void streamed_outputs(const Shape& shape, int axis, std::size_t shift) {
    CAPTURE(repro(shape, axis, 1e-5, dtype_of<T>()));
    CAPTURE(shift);
    const Layout l = collapse(shape, axis);
    REQUIRE(l.size() * std::int64_t(sizeof(T)) >= (std::int64_t(16) << 20));
    std::mt19937_64 rng(31);
    std::normal_distribution<double> normal;
    std::vector<T> x(std::size_t(l.size())), dy(x.size()), gamma(std::size_t(l.channels)), beta(gamma.size());
    for (auto& v : x) v = T(2 * normal(rng) + 1);
    for (auto& v : dy) v = T(normal(rng));
    for (auto& v : gamma) v = T(1 + 0.1 * normal(rng));
    for (auto& v : beta) v = T(normal(rng));
    std::vector<T> y_storage(x.size() + 64, T(kSentinel)), dx_storage(y_storage), mean(gamma.size()),
        invstd(gamma.size()), dg(gamma.size()), db(gamma.size());
    const auto at_shift = [&](std::vector<T>& v) {
        return std::span<T>(v).subspan((-reinterpret_cast<std::uintptr_t>(v.data()) % 64) / sizeof(T) + shift, x.size());
    };
    const std::span<T> y = at_shift(y_storage), dx = at_shift(dx_storage);
    forward<T>(x.data(), gamma.data(), beta.data(), l, 1e-5, y.data(), mean.data(), invstd.data(), 2);
    backward<T>(x.data(), gamma.data(), dy.data(), l, 1e-5, dx.data(), dg.data(), db.data(), 2);

    // The outputs, against the naive reference
    const Outputs<T> got{{y.begin(), y.end()}, mean, invstd, {dx.begin(), dx.end()}, dg, db};
    check_outputs(got, naive_batchnorm(widen(x), shape, normalize_axis(axis, shape.size()), widen(gamma),
                                       widen(beta), widen(dy), 1e-5));

    const ForwardPass<T> fp(x.data(), gamma.data(), beta.data(), l, 1e-5, 2);
    const BackwardPass<T> bp(x.data(), gamma.data(), dy.data(), l, 1e-5, 2);
    const std::int64_t row = l.channels * l.inner, rows = std::max<std::int64_t>(1, (1 << 18) / row); // 1 MiB or less
    std::vector<T> piece(std::size_t(rows * row));
    bool same = true;
    for (std::int64_t o0 = 0; o0 < l.outer; o0 += rows) {
        const std::int64_t o1 = std::min(l.outer, o0 + rows), n = (o1 - o0) * row;
        fp.apply(o0, o1, piece.data());
        same = same && std::equal(piece.begin(), piece.begin() + n, y.begin() + o0 * row);
        bp.apply(o0, o1, piece.data());
        same = same && std::equal(piece.begin(), piece.begin() + n, dx.begin() + o0 * row);
    }
    CHECK(same);
}

} // namespace

TEST_CASE("outputs of 16 MiB or more, written with streamed stores: accurate, and the bits of small pieces") {
    for (std::size_t shift : {0, 1, 4}) {
        streamed_outputs<float>({65536, 64}, 1, shift); // channels-last rows, eight lanes with AVX-512
        streamed_outputs<float>({70000, 60}, 1, shift); // rows not of whole vectors of eight
        streamed_outputs<float>({16, 4, 256, 256}, 1, shift); // runs (NCHW)
        streamed_outputs<double>({32768, 64}, 1, shift); // (dx in the offset form: ordinary stores)
        streamed_outputs<double>({8, 4, 256, 256}, 1, shift);
    }
    // float32 outputs 32 bytes past a line: eight lanes from there
    streamed_outputs<float>({65536, 64}, 1, 8);
    streamed_outputs<float>({16, 4, 256, 256}, 1, 8);
    // runs of channels small enough for forward() and backward() to take them a group of
    // channels at a time (as they do for inputs larger than the last-level cache):
    // groups of 4 and 2 (forward, backward), of 6 and 3 with a shorter last group, of 4
    // and 2 in float64
    const GroupsFrom groups(1);
    CHECK(detail::channels_per_group(collapse(Shape{16, 64, 64, 64}, 1), 1e-5, 2, 4) == 2);
    CHECK(detail::channels_per_group(collapse(Shape{19, 113, 2000}, 1), 1e-5, 2, 4) == 3);
    CHECK(detail::channels_per_group(collapse(Shape{8, 64, 64, 64}, 1), 1e-5, 2, 8) == 2);
    streamed_outputs<float>({16, 64, 64, 64}, 1, 0);
    streamed_outputs<float>({19, 113, 2000}, 1, 1);
    streamed_outputs<double>({8, 64, 64, 64}, 1, 0);
}

TEST_CASE("pass B streams from a quarter of the last-level cache, within 16 to 256 MiB; the same bits either way") {
    struct StreamFrom { // (tests/main.cpp sets 16 MiB for the suite)
        explicit StreamFrom(std::int64_t bytes) { detail::set_stream_threshold(bytes); }
        ~StreamFrom() { detail::set_stream_threshold(std::int64_t(16) << 20); }
    };
    constexpr std::int64_t MiB = std::int64_t(1) << 20;
    {
        const StreamFrom machine(0);
        for (const auto& [cache, from] : {std::pair{8 * MiB, 16 * MiB}, std::pair{32 * MiB, 16 * MiB},
                                          std::pair{128 * MiB, 32 * MiB}, std::pair{512 * MiB, 128 * MiB},
                                          std::pair{4096 * MiB, 256 * MiB}}) {
            const GroupsFrom l3(cache);
            CHECK(detail::stream_threshold() == from);
        }
    }
    // 16 MiB outputs, streamed (from 16 MiB) and not (from 64 MiB): rows and runs
    for (const Shape& shape : {Shape{65536, 64}, Shape{16, 4, 256, 256}}) {
        CAPTURE(repro(shape, 1, 1e-5, dtype_of<float>()));
        const Layout l = collapse(shape, 1);
        std::mt19937_64 rng(64);
        std::normal_distribution<double> normal;
        std::vector<float> x(std::size_t(l.size())), dy(x.size()), gamma(std::size_t(l.channels), 1.5f),
            beta(gamma.size(), 0.25f), m(gamma.size()), r(gamma.size()), dg(gamma.size()), db(gamma.size());
        for (auto& v : x) v = float(2 * normal(rng) + 1);
        for (auto& v : dy) v = float(normal(rng));
        std::vector<float> outs[2];
        for (const std::int64_t from : {16 * MiB, 64 * MiB}) {
            const StreamFrom stream(from);
            std::vector<float> y(x.size()), dx(x.size());
            forward<float>(x.data(), gamma.data(), beta.data(), l, 1e-5, y.data(), m.data(), r.data(), 2);
            backward<float>(x.data(), gamma.data(), dy.data(), l, 1e-5, dx.data(), dg.data(), db.data(), 2);
            std::vector<float>& o = outs[from == 16 * MiB ? 0 : 1];
            o = y;
            o.insert(o.end(), dx.begin(), dx.end());
            o.insert(o.end(), dg.begin(), dg.end());
        }
        CHECK(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * sizeof(float)) == 0);
    }
}

TEST_CASE("channel groups: forward beyond the last-level cache, backward from 8 MiB, of up to 1 MiB") {
    using detail::channels_per_group;
    const auto nchw = [](std::int64_t n, std::int64_t c, std::int64_t hw) { return collapse(Shape{n, c, hw}, 1); };
    // forward by default from the cache's size: (32, 64, 56, 56) float32 is 25.7 MB a tensor
    const std::int64_t cache = detail::group_threshold();
    CHECK(cache > 0);
    CHECK(channels_per_group(nchw(1, 3, 1000), 1e-5, 2, 4) == 0); // small
    constexpr std::int64_t row = 4096 * 64 * 4; // bytes of x of (1, 4096, 64) float32
    CHECK(channels_per_group(nchw(cache / row + 1, 4096, 64), 1e-5, 1, 4) > 0);   // just over the cache
    CHECK(channels_per_group(nchw((cache - 1) / row, 4096, 64), 1e-5, 1, 4) == 0); // just under
    // backward from 8 MiB of x and dy, or the cache's size if less
    const std::int64_t from = detail::piece_threshold();
    CHECK(from == std::min<std::int64_t>(8 << 20, cache));
    CHECK(channels_per_group(nchw(from / (2 * row) + 1, 4096, 64), 1e-5, 2, 4) > 0);
    CHECK(channels_per_group(nchw((from - 1) / (2 * row), 4096, 64), 1e-5, 2, 4) == 0);
    const GroupsFrom groups(1);
    CHECK(channels_per_group(nchw(32, 64, 3136), 1e-5, 2, 4) == 1);    // 0.8 MB a channel
    CHECK(channels_per_group(nchw(32, 64, 3136), 1e-5, 1, 4) == 2);    // 0.4 MB
    CHECK(channels_per_group(nchw(32, 64, 3136), 1e-5, 2, 8) == 1);    // 1.6 MB: alone
    CHECK(channels_per_group(nchw(64, 64, 3136), 1e-5, 2, 8) == 0);    // 3.2 MB: too large
    CHECK(channels_per_group(nchw(16, 64, 1024), 1e-5, 2, 4) == 8);    // 128 KiB
    CHECK(channels_per_group(nchw(16, 64, 1024), 0.0, 2, 4) == 0);     // eps = 0
    CHECK(channels_per_group(collapse(Shape{4096, 64}, 1), 1e-5, 2, 4) == 0); // no runs
    CHECK(channels_per_group(nchw(2, 600, 1000), 1e-5, 2, 4) == 0);    // 4.8 MB rows: blocks of runs
    CHECK(channels_per_group(nchw(2, 600, 1000), 1e-5, 1, 4) == 131);  // 2.4 MB rows: blocks of rows
}

// forward() and backward() take large NCHW tensors a group of channels at a time (each
// group's two passes while its data is in cache), the two-step passes over the whole
// tensor; both must give every channel the same bits, whatever route its data takes, and
// each channel must match the exact kernel, on one thread or two.

namespace {

/// forward() and backward() in groups (of two channels for backward, four for forward)
/// against the passes over the whole tensor (bit for bit) and the exact kernel (each
/// channel within 2 eps; NaN throughout the channel of a NaN), on data from make(x, dy, l).
template <class T, class Make> void groups_as_whole_passes(const Shape& shape, double eps, Make&& make) {
    const GroupsFrom groups(1); // (these tensors fit in the last-level cache)
    CAPTURE(repro(shape, 1, eps, dtype_of<T>()));
    const Layout l = collapse(shape, 1);
    REQUIRE(detail::channels_per_group(l, eps, 2, sizeof(T)) == 2);
    REQUIRE(detail::channels_per_group(l, eps, 1, sizeof(T)) == 4);
    const auto n = std::size_t(l.size()), C = std::size_t(l.channels);
    std::vector<T> x(n), dy(n), gamma(C), beta(C);
    make(x, dy, l);
    std::mt19937_64 rng(3);
    std::normal_distribution<double> normal;
    for (std::size_t c = 0; c < C; ++c) gamma[c] = T(1 + 0.1 * normal(rng)), beta[c] = T(normal(rng));
    const Outputs<T> want = run_exact(x, gamma, beta, dy, l, eps);
    Outputs<T> whole{std::vector<T>(n), std::vector<T>(C), std::vector<T>(C),
                     std::vector<T>(n), std::vector<T>(C), std::vector<T>(C)}; // the passes over the whole tensor
    const ForwardPass<T> fp(x.data(), gamma.data(), beta.data(), l, eps, 2);
    fp.statistics(whole.mean.data(), whole.invstd.data());
    fp.apply(0, l.outer, whole.y.data());
    const BackwardPass<T> bp(x.data(), gamma.data(), dy.data(), l, eps, 2);
    bp.gradients(whole.dgamma.data(), whole.dbeta.data());
    bp.apply(0, l.outer, whole.dx.data());
    for (int threads : {1, 2}) {
        CAPTURE(threads);
        const Outputs<T> got = run_library(x, gamma, beta, dy, l, eps, threads);
        check_same_bits(got, whole);
        for (std::int64_t c = 0; c < l.channels; ++c) {
            const auto i = std::size_t(c);
            if (std::isnan(want.mean[i])) { // the NaN's channel: NaN throughout
                CAPTURE(c);
                CHECK(std::isnan(got.mean[i]));
                CHECK(std::isnan(got.dx[i * std::size_t(l.inner)]));
                continue;
            }
            check_channel(got, want, l, c);
        }
    }
}

} // namespace

TEST_CASE("a group of channels at a time: the bits of the passes over the whole tensor, hard channels too") {
    // float32 (64, 64, 1024): eight blocks of eight rows (the preview), groups of two
    // channels (backward) and four (forward); dx ~1e-7 of its terms (eps = 1e-12): dy nearly
    // linear in x (the channels fail the plain sums, on the preview of the first rows and
    // after, and take the biased ones and the careful pass B), one ordinary channel among
    // them, a NaN (the exact kernel, on its group's values)
    groups_as_whole_passes<float>(Shape{64, 64, 1024}, 1e-12, [&](std::vector<float>& x, std::vector<float>& dy, const Layout& l) {
        std::mt19937_64 rng(7);
        std::normal_distribution<double> normal;
        for (auto& v : x) v = float(normal(rng));
        for (std::size_t i = 0; i < x.size(); ++i) dy[i] = float(0.5 + 2 * double(x[i]) + 5e-7 * normal(rng));
        for_channel(dy, l, 5, [&](float& v) { v = float(normal(rng)); }); // an ordinary channel among them
        bool first = true;
        for_channel(x, l, 9, [&](float& v) { v = first ? NAN : v, first = false; });
    });
}

TEST_CASE("a group of channels at a time: backward's pass B in blocks of rows from the end back, one short") {
    // float32 (62, 64, 1024): groups of two channels, pass B in blocks of four rows of
    // 16 KiB (kBackBlockBytes), the last two rows first and rows 0 and 1 alone at the end
    groups_as_whole_passes<float>(Shape{62, 64, 1024}, 1e-5, [&](std::vector<float>& x, std::vector<float>& dy, const Layout&) {
        std::mt19937_64 rng(9);
        std::normal_distribution<double> normal;
        for (auto& v : x) v = float(3 + normal(rng));
        for (auto& v : dy) v = float(normal(rng));
    });
}

TEST_CASE("a group of channels at a time, float64: the bits of the passes over the whole tensor, hard channels too") {
    // float64 (128, 64, 256): eight blocks of 16 rows (the preview, two rows: it gives
    // channel 3 its centre), groups of two channels (backward) and four (forward); x far
    // from 0 (centred sums), magnitudes beyond the fast range (the exact kernel)
    groups_as_whole_passes<double>(Shape{128, 64, 256}, 1e-5, [&](std::vector<double>& x, std::vector<double>& dy, const Layout& l) {
        std::mt19937_64 rng(8);
        std::normal_distribution<double> normal;
        for (auto& v : x) v = normal(rng);
        for (auto& v : dy) v = normal(rng);
        for_channel(x, l, 3, [](double& v) { v += 1e9; });
        for_channel(x, l, 4, [](double& v) { v *= 1e300; });
        for_channel(x, l, 63, [](double& v) { v *= 1e-300; });
    });
}
