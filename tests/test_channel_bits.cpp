// A channel's bits depend on its own data only: not on its neighbours (ordinary, hard, or
// sent to the exact kernel), not on where it sits among vector lanes, chunks and groups of
// channels (run again alone, one lane), not on whether it is summed again alone or with
// others, and not on the arrays' alignment. Each case also checks the channels against
// the exact kernel where the data is hard.
#include "run_helpers.hpp"

#include "bnorm/batchnorm.hpp"

#include <array>
#include <functional>
#include <random>

using namespace bnorm;
using namespace bnorm::test;

TEST_CASE("a channel's outputs depend on its own data only, whichever kernel its neighbours need") {
    // Channels 1 to 5 are ordinary; channel 0 is ordinary in one run and, in the others, of
    // a magnitude (1e300, 1e-300) or finiteness (NaN) that sends it to the exact kernel.
    // The per-channel set-up takes channels four at a time when all four are ordinary, so
    // channels 1 to 3 are computed as vector lanes in the first run and one by one after.
    constexpr std::int64_t C = 6, rows = 300;
    const Layout l = collapse(Shape{rows, C}, 1);
    std::mt19937_64 rng(9);
    std::normal_distribution<double> normal;
    std::vector<double> x(l.size()), dy(l.size()), gamma(C), beta(C);
    for (auto& v : x) v = normal(rng);
    for (auto& v : dy) v = normal(rng);
    for (auto& v : gamma) v = normal(rng);
    for (auto& v : beta) v = normal(rng);
    const Outputs<double> reference = run_library(x, gamma, beta, dy, l, 1e-5);
    for (double scale : {1e300, 1e-300, double(NAN)}) {
        CAPTURE(scale);
        std::vector<double> xs = x;
        for_channel(xs, l, 0, [&](double& v) { v *= scale; });
        const Outputs<double> got = run_library(xs, gamma, beta, dy, l, 1e-5);
        for (std::int64_t c = 1; c < C; ++c) {
            CAPTURE(c);
            check_same_channel(got, reference, l, c);
        }
    }
}

TEST_CASE("float64: a channel's bits in a vector of eight, of four, or alone") {
    // Each channel, run again alone (one channel, one lane), must give the same bits: one
    // block either way (3001 rows). With AVX-512, pass A sums channels-last rows in chunks
    // of eight lanes (backward) or sixteen (forward), each chunk's first look (its
    // biases) taken while the chunk before it is summed, then groups of four lanes and
    // single channels; pass B takes groups of four in the offset form (|μ| ≤ 4σ) or the
    // centred one, or eight lanes when every channel takes the same form.
    //   mixed: 21 channels; channels 3 and 17 (|μ|/σ = 1e9) are summed again, centred on
    //     their means, in the same lanes, and channels 0-9 take the offset form of dx;
    //   scales: 40 channels, whose magnitudes change from one group of eight to the next
    //     (2^0, 2^30, 2^-30, 2^10, 2^0): a chunk given its neighbour's biases changes bits;
    //   centred: the same 40 channels at |μ| = 1e9 with spreads 1e-3, 1e2, 1e2, 1e-3, 1e-3
    //     by group of eight, all summed again centred (and their dx in the centred form).
    constexpr std::int64_t rows = 3001;
    struct Data {
        const char* name;
        std::int64_t C;
        std::function<double(std::int64_t c, double z)> x;
    };
    const double scale[] = {1, 0x1p30, 0x1p-30, 0x1p10, 1}, spread[] = {1e-3, 1e2, 1e2, 1e-3, 1e-3};
    const Data cases[] = {
        {"mixed", 21, [](std::int64_t c, double z) { return (c == 3 || c == 17 ? 1e9 : c < 10 ? 0.5 : 30.0) + z; }},
        {"scales", 40, [&](std::int64_t c, double z) { return scale[c / 8] * (0.25 + z); }},
        {"centred", 40, [&](std::int64_t c, double z) { return 1e9 + spread[c / 8] * z; }},
    };
    for (const Data& d : cases) {
        CAPTURE(d.name);
        const std::int64_t C = d.C;
        const Layout l = collapse(Shape{rows, C}, 1), alone = collapse(Shape{rows, 1}, 1);
        std::mt19937_64 rng(47);
        std::normal_distribution<double> normal;
        const auto n = std::size_t(C);
        std::vector<double> x(std::size_t(l.size())), dy(x.size()), gamma(n), beta(n);
        for (std::int64_t o = 0; o < rows; ++o)
            for (std::int64_t c = 0; c < C; ++c) {
                const auto i = std::size_t(o * C + c);
                x[i] = d.x(c, normal(rng)), dy[i] = normal(rng);
            }
        for (auto& v : gamma) v = normal(rng);
        for (auto& v : beta) v = normal(rng);
        const Outputs<double> all = run_library(x, gamma, beta, dy, l, 1e-5);
        for (std::int64_t c = 0; c < C; ++c) {
            CAPTURE(c);
            const auto k = std::size_t(c);
            const Outputs<double> one = run_library(channel_of(x, l, c), {gamma[k]}, {beta[k]}, channel_of(dy, l, c),
                                                    alone, 1e-5);
            check_same_channel(all, l, c, one, alone, 0);
        }
    }
}

TEST_CASE("float32: a channel's bits in a pair of chunks, a chunk, or alone") {
    // float32 channels whose plain sums fail their certificate are summed again with the
    // biased sums: backward's for dy = 0.5 + 2x, forward's for x far from 0 against its
    // spread. With AVX-512, channels-last rows go in chunks of eight lanes for backward,
    // whose first looks (the biases, and whether Σx and Σdy are exact) are taken two
    // chunks at once (sixteen floats, a line), each chunk then given its half; an odd
    // chunk left is looked at alone; forward's chunks are of sixteen. 56 channels (three
    // pairs and a chunk) whose magnitudes change from one group of eight to the next
    // (2^30, 1, 1, 2^30, 2^-30, 2^10, 1): a chunk given the other half of its pair's look
    // has the wrong largest |x| and |dy|, which sends it down another route (float32's
    // outputs hide a bias that is off: the sums stay exact, or their error terms catch
    // it). Each channel run again alone (one lane) must give the same bits; one block
    // either way (3001 rows).
    constexpr std::int64_t rows = 3001, C = 56;
    const double scale[] = {0x1p30, 1, 1, 0x1p30, 0x1p-30, 0x1p10, 1};
    const Layout l = collapse(Shape{rows, C}, 1), alone = collapse(Shape{rows, 1}, 1);
    std::mt19937_64 rng(61);
    std::normal_distribution<double> normal;
    const auto n = std::size_t(C);
    std::vector<float> x(std::size_t(l.size())), xf(x.size()), dy(x.size()), gamma(n), beta(n);
    for (std::int64_t o = 0; o < rows; ++o)
        for (std::int64_t c = 0; c < C; ++c) {
            const auto i = std::size_t(o * C + c);
            const double z = normal(rng), s = scale[c / 8];
            x[i] = float(s * (0.25 + z)), xf[i] = float(s * (1e4 + z)), dy[i] = float(0.5 * s + 2 * double(x[i]));
        }
    for (auto& v : gamma) v = float(normal(rng));
    for (auto& v : beta) v = float(normal(rng));
    // forward on x far from 0 (xf), backward on x with dy = 0.5 + 2x
    const Outputs<float> all =
        joined(run_library_forward(xf, gamma, beta, l, 1e-5), run_library_backward(x, gamma, dy, l, 1e-5));
    for (std::int64_t c = 0; c < C; ++c) {
        CAPTURE(c);
        const std::vector<float> g{gamma[std::size_t(c)]}, b{beta[std::size_t(c)]};
        const Outputs<float> one = joined(run_library_forward(channel_of(xf, l, c), g, b, alone, 1e-5),
                                          run_library_backward(channel_of(x, l, c), g, channel_of(dy, l, c), alone, 1e-5));
        check_same_channel(all, l, c, one, alone, 0);
    }
}

TEST_CASE("float64 channels summed again: one at a time or all in one pass, the same bits") {
    // Channels-last data re-sums one failing channel alone, and several in one pass over
    // the tensor (reading one channel alone touches every line). Channel 0 fails its
    // certificate in both runs, channel 1 only in the second: channel 0's outputs must not
    // change, and must match the exact kernel. Two ways to fail: |μ|/σ = 1e9 (the biased
    // sums centred on the mean pass), and that with dy = (x − 1e9) + 1e-10·noise (dx is
    // 1e-10 of its terms: they fail too, and the error-free sums take it). Two blocks:
    // the full pass merges them four channels at a time, the channel alone by itself.
    constexpr std::int64_t rows = 60000, C = 5;
    const Layout l = collapse(Shape{rows, C}, 1);
    for (bool linear : {false, true}) {
        CAPTURE(linear);
        std::mt19937_64 rng(31);
        std::normal_distribution<double> normal;
        std::vector<double> x(std::size_t(l.size())), dy(x.size());
        for (auto& v : x) v = normal(rng);
        for (auto& v : dy) v = normal(rng);
        auto make_hard = [&](std::vector<double>& xs, std::vector<double>& dys, std::int64_t c) {
            for (std::int64_t o = 0; o < rows; ++o) {
                const auto i = std::size_t(o * C + c);
                xs[i] += 1e9;
                if (linear) dys[i] = (xs[i] - 1e9) + 1e-10 * dys[i];
            }
        };
        // forward with eps = 1e-5, backward with eps = 0; channel 0 against the exact kernel
        auto run = [&](const std::vector<double>& xs, const std::vector<double>& dys) {
            const Outputs<double> got =
                joined(run_library_forward<double>(xs, {}, {}, l, 1e-5), run_library_backward<double>(xs, {}, dys, l, 0));
            const Outputs<double> want =
                joined(run_exact_forward<double>(xs, {}, {}, l, 1e-5), run_exact_backward<double>(xs, {}, dys, l, 0));
            check_channel(got, want, l, 0);
            return got;
        };
        std::vector<double> x1 = x, dy1 = dy;
        make_hard(x1, dy1, 0);
        std::vector<double> x2 = x1, dy2 = dy1;
        make_hard(x2, dy2, 1);
        check_same_channel(run(x1, dy1), run(x2, dy2), l, 0);
    }
}

TEST_CASE("float32 channels summed again: one at a time or all in one pass, the same bits") {
    // A float32 channel whose plain sums fail their certificate is summed again with
    // float64's biased sums, and if those fail too, error-free: a channels-last channel
    // alone (read with a stride), several in one pass over the tensor. Channel 0 fails in
    // both runs, channel 1 only in the second; channel 0's outputs must not change, and
    // must match the exact kernel (two blocks: merged four channels at a time in the full
    // pass, alone otherwise). Four ways to fail, each with its own route:
    //   0. dγ near 0: the biased sums pass, for the plain pass B;
    //   1. dy = 0.5 + 2x + 5e-7·noise, eps = 0 (dx ~1e-7 of its terms): they pass for the
    //      double-double pass B only;
    //   2. dy = 0.5 + 2x, eps = 0 (dx is float32's rounding of dy): summed error-free, then
    //      the double-double pass B;
    //   3. dy = x, eps = 0 (dx is 0): summed error-free, then the exact kernel.
    constexpr std::int64_t rows = 110000, C = 5;
    const Layout l = collapse(Shape{rows, C}, 1);
    for (int kind : {0, 1, 2, 3}) {
        CAPTURE(kind);
        std::mt19937_64 rng(37);
        std::normal_distribution<double> normal;
        std::vector<float> x(std::size_t(l.size())), dy(x.size());
        for (auto& v : x) v = float(normal(rng));
        for (auto& v : dy) v = float(normal(rng));
        const double eps = kind == 0 ? 1e-5 : 0;
        auto make_hard = [&](std::vector<float>& g, std::int64_t c) {
            const std::vector<double> xc = channel_values(x, l, c);
            std::vector<float> v(rows);
            std::mt19937_64 noise_rng(100 + std::uint64_t(c)); // the same noise in both runs
            for (std::int64_t o = 0; o < rows; ++o) {
                const double xv = xc[std::size_t(o)];
                v[std::size_t(o)] = kind == 1   ? float(0.5 + 2 * xv + 5e-7 * normal(noise_rng))
                                    : kind == 2 ? float(0.5 + 2 * xv)
                                                : float(xv);
            }
            if (kind == 0) v = without_projection(channel_values(g, l, c), xc);
            set_channel(g, l, c, v);
        };
        // forward with eps = 1e-5, backward with `eps`; channel 0's gradients against the exact kernel
        auto run = [&](const std::vector<float>& g) {
            const Outputs<float> got =
                joined(run_library_forward<float>(x, {}, {}, l, 1e-5), run_library_backward<float>(x, {}, g, l, eps));
            check_channel(got, run_exact_backward<float>(x, {}, g, l, eps), l, 0);
            return got;
        };
        std::vector<float> one = dy;
        make_hard(one, 0);
        std::vector<float> two = one;
        make_hard(two, 1);
        check_same_channel(run(one), run(two), l, 0);
    }
}

TEST_CASE("float32: dx of uncertified channels, four lanes or one, the same bits") {
    // dy = 0.5 + 2x + 5e-7·noise with eps = 0 makes a channel's dx about 1e-7 of its terms:
    // its plain sums fail their certificate, and the biased ones pass it only for the
    // double-double pass B, which computes dx with every error term. Channels-last rows take four such
    // consecutive channels as vector lanes and the others one by one: channel 1 must get the
    // same bits either way, and every channel must match the exact kernel. Channels 0 to 3
    // have |μ| ≤ 4σ and take the offset form (input_gradient_offset_dd) alone or as four
    // lanes; channels 4 and 5 (|μ| = 10σ) take the centred form.
    constexpr std::int64_t rows = 8192, C = 6;
    const Layout l = collapse(Shape{rows, C}, 1);
    std::mt19937_64 rng(41);
    std::normal_distribution<double> normal;
    std::vector<float> x(std::size_t(l.size())), dy(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(normal(rng) + (i % C >= 4 ? 10 : 0));
    for (auto& v : dy) v = float(normal(rng));
    std::vector<float> all = dy, only1 = dy, first4 = dy; // which channels have dy = 0.5 + 2x
    for (std::int64_t o = 0; o < rows; ++o)
        for (std::int64_t c = 0; c < C; ++c) {
            const auto i = std::size_t(o * C + c);
            all[i] = float(0.5 + 2 * double(x[i]) + 5e-7 * normal(rng));
            if (c == 1) only1[i] = all[i];
            if (c < 4) first4[i] = all[i];
        }
    auto run = [&](const std::vector<float>& g) {
        const Outputs<float> got = run_library_backward<float>(x, {}, g, l, 0);
        const Outputs<float> want = run_exact_backward<float>(x, {}, g, l, 0);
        for (std::int64_t c = 0; c < C; ++c) check_channel(got, want, l, c);
        return got;
    };
    const Outputs<float> reference = run(all);   // every channel: double-double pass B in one pass
    check_same_channel(run(only1), reference, l, 1);  // channel 1 alone after the plain pass B
    check_same_channel(run(first4), reference, l, 1); // channels 0 to 3 as four lanes after it
}

namespace {

/// backward() on the same values placed at `shift` elements past a 64-byte boundary
/// (x, dy and dx each by its own shift), so that pass B takes its eight lanes (every
/// array on a multiple of eight values, with AVX-512) or its four, rows and runs, streamed
/// (dx of 16 MiB or more) or not; dx must be the same bits in every placement, and
/// within 2 eps of the exact kernel's (dy linear in x: dx is 1e-3 of its terms, beyond
/// the naive reference's long double).
template <class T> void same_bits_any_alignment(const Shape& shape, int axis, bool dy_linear) {
    CAPTURE(repro(shape, axis, 1e-5, dtype_of<T>()));
    CAPTURE(dy_linear);
    const Layout l = collapse(shape, axis);
    const auto n = std::size_t(l.size()), C = std::size_t(l.channels);
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal;
    std::vector<T> x(n), dy(n), gamma(C);
    for (auto& v : x) v = T(3 * normal(rng) + 1);
    for (std::size_t i = 0; i < n; ++i) // dy linear in x: float32 channels then take the double-double kernels
        dy[i] = dy_linear ? T(0.5 + 2 * double(x[i]) + 1e-3 * normal(rng)) : T(normal(rng));
    for (auto& v : gamma) v = T(1 + 0.1 * normal(rng));
    auto placed = [&](std::vector<T>& storage, const std::vector<T>& values, std::size_t shift) {
        storage.assign(n + 64, T(kSentinel));
        T* p = storage.data() + (-reinterpret_cast<std::uintptr_t>(storage.data()) % 64) / sizeof(T) + shift;
        std::copy(values.begin(), values.end(), p);
        return p;
    };
    std::vector<T> reference;
    for (const auto& [sx, sg, sd] : {std::array<std::size_t, 3>{0, 0, 0}, {1, 1, 1}, {0, 0, 4}, {4, 0, 0}, {0, 8, 8}}) {
        const std::string placement = fmt::format("x +{} dy +{} dx +{}", sx, sg, sd);
        CAPTURE(placement);
        std::vector<T> xs, gs, ds, dg(C), db(C);
        const T* xp = placed(xs, x, sx);
        const T* gp = placed(gs, dy, sg);
        T* dx = placed(ds, std::vector<T>(n, T(kSentinel)), sd);
        backward<T>(xp, gamma.data(), gp, l, 1e-5, dx, dg.data(), db.data(), 2);
        std::vector<T> got(dx, dx + n);
        if (reference.empty()) {
            reference = got;
            // the all-double-double kernel (checked against mpmath)
            CHECK(test::eps_error<T>(got, widen(run_exact_backward(x, gamma, dy, l, 1e-5).dx)) <= 2);
        } else {
            CHECK(got == reference);
        }
    }
}

} // namespace

TEST_CASE("pass B's eight lanes and four: the same bits whatever the arrays' alignment") {
    for (bool linear : {false, true}) {
        same_bits_any_alignment<float>({700, 64}, 1, linear);      // rows of whole vectors of eight
        same_bits_any_alignment<float>({700, 37}, 1, linear);      // rows whose alignment alternates
        same_bits_any_alignment<float>({700, 16}, 1, linear);      // few channels: coefficients in registers
        same_bits_any_alignment<float>({5, 6, 19, 23}, 1, linear); // runs of 437
        same_bits_any_alignment<double>({700, 64}, 1, linear);
        same_bits_any_alignment<double>({5, 6, 19, 23}, 1, linear);
    }
    same_bits_any_alignment<float>({65536, 64}, 1, false); // streamed
    same_bits_any_alignment<double>({4, 4, 256, 256}, 1, false);
}
