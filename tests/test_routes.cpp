// Routes and certificates: which sums a channel takes (float32: plain, then float64's biased,
// then error-free; float64: biased, then centred on the mean, then error-free), which form
// of dx (plain, double-double offset or centred, the exact kernel), the shortcuts that skip
// error terms, and the first stage previewed on the first rows. Each channel is made hard
// in one way and checked against the exact kernel on its own scale, and its ordinary
// neighbours must not change bits for it.
#include "run_helpers.hpp"

#include "bnorm/batchnorm.hpp"

#include <random>
#include <utility>

using namespace bnorm;
using namespace bnorm::test;

TEST_CASE("float32: plain sums are used only where certified, channel by channel") {
    // Channel 1 is ordinary data. Channel 0 is ordinary too, or x and dy sum to almost 0
    // (mean and dβ are tiny against the values, and the float32 plain sums round), or dy = x (dx is eps/(var+eps)
    // of its terms), or dy has its projection on x − μ taken out (dγ is ~1e-7 of its
    // terms: the plain sums fail their certificate and float64's biased sums pass it, for
    // the plain pass B). Every output of each channel must match the exact kernel on its own
    // scale, and channel 1's bits must not depend on what channel 0 needed.
    for (const Shape& shape : {Shape{8192, 2}, Shape{4, 2, 2048}}) {
        const Layout l = collapse(shape, 1);
        CAPTURE(shape_to_string(shape));
        const auto n = std::size_t(l.per_channel());
        std::mt19937_64 rng(21);
        std::normal_distribution<double> normal;
        std::vector<float> x(std::size_t(l.size())), dy(x.size());
        for (auto& v : x) v = float(normal(rng));
        for (auto& v : dy) v = float(normal(rng));
        Outputs<float> ordinary;
        for (int kind : {0, 1, 2, 3}) {
            CAPTURE(kind);
            std::vector<float> xs = x, dys = dy;
            if (kind == 1) set_channel(xs, l, 0, cancelling_values(n, 5)), set_channel(dys, l, 0, cancelling_values(n, 6));
            if (kind == 2) set_channel(dys, l, 0, channel_of(xs, l, 0));
            if (kind == 3) set_channel(dys, l, 0, without_projection(channel_values(dys, l, 0), channel_values(xs, l, 0)));
            const Outputs<float> got = run_library<float>(xs, {}, {}, dys, l, 1e-5);
            const Outputs<float> want = run_exact<float>(xs, {}, {}, dys, l, 1e-5);
            for (std::int64_t c = 0; c < 2; ++c) check_channel(got, want, l, c);
            if (kind == 0) ordinary = got;
            else check_same_channel(got, ordinary, l, 1);
        }
    }
}

TEST_CASE("float64: biased sums are used only where certified, channel by channel") {
    // Channel 1 is ordinary data. Channel 0 is ordinary too, or far from zero against its
    // spread (|μ|/σ = 1e9: the uncentred sums cancel, and the sums centred on the mean
    // pass; |μ|/σ = 300: they lose 16 bits to
    // cancellation and pass, so every rounding error of the terms must have been kept,
    // the products' included), or symmetric about 0 (the mean is
    // exactly 0, tiny against what the sums may be off by), or has dy = x (dx is
    // eps/(var+eps) of its terms), or values spread over 2^±40 (the biases see very
    // different magnitudes tile to tile). Every output of each channel must match the
    // exact kernel on its own scale, and channel 1's bits must not depend on what
    // channel 0 needed.
    for (const Shape& shape : {Shape{8192, 2}, Shape{4, 2, 2048}, Shape{1000, 6}}) {
        const Layout l = collapse(shape, 1);
        CAPTURE(shape_to_string(shape));
        const auto n = std::size_t(l.per_channel());
        const auto C = std::size_t(l.channels);
        std::mt19937_64 rng(23);
        std::normal_distribution<double> normal;
        std::uniform_int_distribution<int> exponent(-40, 40);
        std::vector<double> x(std::size_t(l.size())), dy(x.size()), gamma(C, 1.25), beta(C, -0.5);
        for (auto& v : x) v = normal(rng);
        for (auto& v : dy) v = normal(rng);
        Outputs<double> ordinary;
        for (int kind : {0, 1, 2, 3, 4, 5}) {
            CAPTURE(kind);
            std::vector<double> xs = x, dys = dy, v0(n);
            if (kind == 1) {
                for (auto& v : v0) v = 1e9 + normal(rng);
                set_channel(xs, l, 0, v0);
            }
            if (kind == 2) {
                for (std::size_t i = 0; i < n / 2; ++i) v0[i] = normal(rng), v0[n / 2 + i] = -v0[i];
                std::shuffle(v0.begin(), v0.end(), rng);
                set_channel(xs, l, 0, v0);
            }
            if (kind == 3) set_channel(dys, l, 0, channel_values(xs, l, 0));
            if (kind == 4) {
                for (auto& v : v0) v = std::ldexp(normal(rng), exponent(rng));
                set_channel(xs, l, 0, v0);
            }
            if (kind == 5) {
                for (auto& v : v0) v = 300 + normal(rng);
                set_channel(xs, l, 0, v0);
            }
            const Outputs<double> got = run_library(xs, gamma, beta, dys, l, 1e-5);
            const Outputs<double> want = run_exact(xs, gamma, beta, dys, l, 1e-5);
            for (std::int64_t c = 0; c < 2; ++c) check_channel(got, want, l, c);
            if (kind == 0) ordinary = got;
            else check_same_channel(got, ordinary, l, 1);
        }
    }
}

TEST_CASE("float64 dx, centred and offset forms, when dx is 1e-10 of its terms") {
    // dy = (x − shift) + 1e-10·noise and eps = 0: dx is about 1e-10 of its terms, so any
    // error term that pass B drops shows, from 2^-70 of the terms. Channel 0 has |μ| =
    // 1000σ and takes the centred form; channel 1 has |μ| = 3σ and takes the offset form
    // (input_gradient_offset_dd); the others are ordinary. Rows, a channels-last tail,
    // and runs.
    for (const Shape& shape : {Shape{8192, 2}, Shape{1000, 7}, Shape{4, 2, 2048}}) {
        const Layout l = collapse(shape, 1);
        CAPTURE(shape_to_string(shape));
        const auto C = std::size_t(l.channels);
        std::mt19937_64 rng(41);
        std::normal_distribution<double> normal;
        std::vector<double> x(std::size_t(l.size())), dy(x.size()), gamma(C, 0.75);
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t c = 0; c < l.channels; ++c)
                for (std::int64_t k = 0; k < l.inner; ++k) {
                    const double shift = c == 0 ? 1e3 : c == 1 ? 3 : 0;
                    const double v = shift + normal(rng);
                    const auto i = std::size_t((o * l.channels + c) * l.inner + k);
                    x[i] = v, dy[i] = c <= 1 ? (v - shift) + 1e-10 * normal(rng) : normal(rng);
                }
        const Outputs<double> got = run_library_backward(x, gamma, dy, l, 0);
        const Outputs<double> want = run_exact_backward(x, gamma, dy, l, 0);
        for (std::int64_t c = 0; c < l.channels; ++c) check_channel(got, want, l, c);
    }
}

TEST_CASE("float64 dx too small for double-double pass B: the exact kernel, and only then") {
    // dy = (x − shift) + noise·N(0,1), eps = 0: dx is `noise` of its terms. Pass B keeps
    // errors to ~2^-104 of |dy|, |B| and |μ·H|, which is not enough when those are 2^50
    // times dx (1e12 offset with 1e-10 noise: 1e5 eps before; no offset with 1e-15 noise:
    // 2 eps). Such channels are sent to the exact kernel; channel 1 stays ordinary.
    for (const auto& [shift, noise] : {std::pair{1e12, 1e-10}, std::pair{0.0, 1e-15}, std::pair{1e6, 1e-12}}) {
        CAPTURE(shift);
        CAPTURE(noise);
        constexpr std::int64_t rows = 8192, C = 2;
        const Layout l = collapse(Shape{rows, C}, 1);
        std::mt19937_64 rng(53);
        std::normal_distribution<double> normal;
        std::vector<double> x(std::size_t(l.size())), dy(x.size()), gamma{0.75, 1.5};
        for (std::int64_t o = 0; o < rows; ++o) {
            const double v = normal(rng);
            x[std::size_t(o * C)] = shift + v; // rounded: dy is linear in x itself, not in v
            dy[std::size_t(o * C)] = (x[std::size_t(o * C)] - shift) + noise * normal(rng);
            x[std::size_t(o * C + 1)] = normal(rng), dy[std::size_t(o * C + 1)] = normal(rng);
        }
        const Outputs<double> got = run_library_backward(x, gamma, dy, l, 0);
        const Outputs<double> want = run_exact_backward(x, gamma, dy, l, 0);
        for (std::int64_t c = 0; c < C; ++c) check_channel(got, want, l, c, 1);
    }
    // Hard data that double-double pass B handles stays on the fast path (the exact kernel
    // is 40 times slower): |μ|/σ = 5e4, and dy = 0.5 + 2x with it (dx is 1e-5 of its terms,
    // and Σt² must be known to 2^-80 of Σdy² to see it).
    constexpr std::int64_t rows = 8192, C = 2;
    const Layout l = collapse(Shape{rows, C}, 1);
    std::mt19937_64 rng(59);
    std::normal_distribution<double> normal(5e4, 2);
    std::vector<double> x(std::size_t(l.size())), dy(x.size());
    for (auto& v : x) v = normal(rng);
    for (auto& v : dy) v = normal(rng) - 5e4;
    CHECK(BackwardPass<double>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
    for (std::size_t i = 0; i < x.size(); ++i) dy[i] = 0.5 + 2 * x[i];
    CHECK(BackwardPass<double>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
}

TEST_CASE("float32 biased sums: tiles with tiny values keep Σx's and Σdy's error terms") {
    // Where every nonzero float of a tile is within 2^22 of its largest, the biased sums
    // of x and dy are exact, and their error terms are not computed (FloatLook). In the
    // special channels every other value is t = 3·2^-46 and the others are ±(1 + r) in
    // cancelling pairs, so that the mean and dβ are t/2 per value, 10^-14 of the values:
    // the plain sums fail their certificate, and the biased ones, to which t mostly adds
    // inexactly (their accumulators' ulp is 2^-45, or 2^-44 for runs), give the mean and
    // dβ only with their error terms: without them, a third or all of each t is lost. The
    // other channels have dy = 0.5 + 2x: they fail the plain sums' certificate too, and
    // their tiles take the shortcut. Rows (N, C) with 3 channels (one at a time) and with
    // 21 (eight-lane, four-lane and one-lane groups, a special channel in each, beside
    // channels that take the shortcut), with 24 and 48 (backward's chunks of eight and
    // forward's of sixteen, special channels in the second and the last only: each chunk
    // is looked at while the one before it is summed), and runs (NCHW); every output of
    // every channel against the exact kernel, on its own scale.
    constexpr double t = 3 * 0x1p-46;
    struct Case {
        Shape shape;
        std::vector<std::int64_t> special;
    };
    for (const Case& k : {Case{{4096, 3}, {0, 1}}, Case{{2048, 21}, {5, 18, 20}}, Case{{2048, 24}, {12, 22}},
                         Case{{2048, 48}, {20, 45}}, Case{{4, 3, 1024}, {0, 1}}}) {
        const Layout l = collapse(k.shape, 1);
        CAPTURE(shape_to_string(k.shape));
        std::mt19937_64 rng(43);
        std::normal_distribution<double> normal;
        std::uniform_real_distribution<double> uniform;
        std::vector<float> x(std::size_t(l.size())), dy(x.size());
        for (auto& v : x) v = float(normal(rng));
        for (std::size_t i = 0; i < x.size(); ++i) dy[i] = float(0.5 + 2 * double(x[i]));
        for (std::int64_t c : k.special) {
            std::vector<float> xs(std::size_t(l.per_channel())), gs(xs.size());
            for (std::size_t i = 0; i < xs.size(); i += 4) {
                const auto u = float(1 + uniform(rng)), w = float(1 + uniform(rng));
                xs[i] = u, xs[i + 2] = -u, gs[i] = w, gs[i + 2] = -w;
                xs[i + 1] = xs[i + 3] = gs[i + 1] = gs[i + 3] = float(t);
            }
            set_channel(x, l, c, xs);
            set_channel(dy, l, c, gs);
        }
        const Outputs<float> got = run_library<float>(x, {}, {}, dy, l, 1e-5);
        const Outputs<float> want = run_exact<float>(x, {}, {}, dy, l, 1e-5);
        const auto first = std::size_t(k.special[0]);
        CHECK(std::abs(want.mean[first] - t / 2) < 1e-3 * t); // the sums are what they are meant to be
        CHECK(std::abs(want.dbeta[first] - t * double(l.per_channel()) / 2) < 1e-3 * t * double(l.per_channel()));
        for (std::int64_t c = 0; c < l.channels; ++c) check_channel(got, want, l, c); // each on its channel's scale
    }
}

// In tensors of at least four blocks, pass A first tries the first stage (float32: plain
// sums; float64: biased) on an eighth of the first block; a channel that fails there starts
// at the second stage (float32: biased; float64: centred on the preview's mean), and when
// every channel does, the first stage is skipped. Channel 0 is hard in both runs, alone
// among ordinary channels in the first and with all its neighbours hard in the second (the
// pass saved): its outputs must be the same bits (a channel's route depends on its own data
// only), match the exact kernel, and not depend on the thread count.

TEST_CASE("the first stage previewed on the first rows: skipped by the channels that fail it, exact") {
    // float64 data far from 0 against its spread. Channel 4 of the first run looks hard in
    // its first rows only (offset 1e9, then ordinary): centred on the preview's mean, its
    // later tiles are out of Sterbenz's range and poison the centred sums, so it is summed
    // error-free.
    constexpr std::int64_t rows = 420000, C = 5; // float64 forward: 5 blocks, backward 9
    const Layout l = collapse(Shape{rows, C}, 1);
    std::mt19937_64 rng(41);
    std::normal_distribution<double> normal;
    std::vector<double> x(std::size_t(l.size())), dy(x.size());
    for (auto& v : x) v = normal(rng);
    for (auto& v : dy) v = normal(rng);
    std::vector<double> mixed = x, hard = x;
    for (std::int64_t o = 0; o < rows; ++o)
        for (std::int64_t c = 0; c < C; ++c) {
            const auto i = std::size_t(o * C + c);
            hard[i] += 1e9;
            if (c == 0 || (c == 4 && o < rows / 32)) mixed[i] += 1e9; // 4: the previews' rows
        }
    auto outputs = [&](const std::vector<double>& xs, std::int64_t c, int threads) {
        const Outputs<double> got = run_library<double>(xs, {}, {}, dy, l, 1e-5, threads);
        check_channel(got, run_exact<double>(xs, {}, {}, dy, l, 1e-5), l, c);
        return got;
    };
    const Outputs<double> alone = outputs(mixed, 0, 1);
    check_same_channel(outputs(hard, 0, 1), alone, l, 0);
    check_same_channel(outputs(mixed, 0, 3), alone, l, 0);
    outputs(mixed, 4, 2);
}

TEST_CASE("the first stage previewed on the first rows, float32: skipped by the channels that fail it, exact") {
    // dy = 0.5 + 2x + 5e-7·noise, eps = 0: dx is ~1e-7 of its terms, and the plain sums
    // fail (backward only: float32 forward needs 16 MB for four blocks)
    constexpr std::int64_t rows = 420000, C = 5;
    const Layout l = collapse(Shape{rows, C}, 1);
    std::mt19937_64 rng(41);
    std::normal_distribution<double> normal;
    std::vector<float> x(std::size_t(l.size())), dy(x.size());
    for (auto& v : x) v = float(normal(rng));
    for (auto& v : dy) v = float(normal(rng));
    std::vector<float> mixed = dy, hard = dy;
    for (std::int64_t o = 0; o < rows; ++o)
        for (std::int64_t c = 0; c < C; ++c) {
            const auto i = std::size_t(o * C + c);
            hard[i] = float(0.5 + 2 * double(x[i]) + 5e-7 * normal(rng));
            if (c == 0) mixed[i] = hard[i];
        }
    auto outputs = [&](const std::vector<float>& g, int threads) {
        const Outputs<float> got = run_library_backward<float>(x, {}, g, l, 0, threads);
        check_channel(got, run_exact_backward<float>(x, {}, g, l, 0), l, 0);
        return got;
    };
    const Outputs<float> alone = outputs(mixed, 1);
    check_same_channel(outputs(hard, 1), alone, l, 0);
    check_same_channel(outputs(mixed, 2), alone, l, 0);
}
