// The library's kernels against independent references: a naive long-double
// implementation (naive_batchnorm.hpp), inputs with exactly known answers, and central
// finite differences of f = Σ dy ⊙ y. The exact mpmath reference is test_golden.cpp.
#include "helpers.hpp"
#include "naive_batchnorm.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"
#include "../lib/src/channel_groups.hpp"
#include "../lib/src/ddouble.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <random>

using namespace bnorm;

namespace {

constexpr double kSentinel = 8; // outputs are prefilled with it: they must be assigned

/// benchdnn-style descriptor of a problem, printed with every failure.
std::string repro(const Shape& shape, int axis, double eps, DType dt) {
    return fmt::format("shape{}_axis{}_eps{}_{}", fmt::join(shape, "x"), axis, eps, dtype_name(dt));
}

template <class T> struct Run {
    std::vector<T> y, mean, invstd, dx, dgamma, dbeta;
};

template <class T>
Run<T> run_library(const std::vector<T>& x, const Shape& shape, int axis, const std::vector<T>& gamma,
                   const std::vector<T>& beta, const std::vector<T>& dy, double eps) {
    const Layout l = collapse(shape, axis);
    const auto C = static_cast<std::size_t>(l.channels);
    Run<T> r{std::vector<T>(x.size(), T(kSentinel)), std::vector<T>(C, T(kSentinel)),
             std::vector<T>(C, T(kSentinel)),        std::vector<T>(x.size(), T(kSentinel)),
             std::vector<T>(C, T(kSentinel)),        std::vector<T>(C, T(kSentinel))};
    forward<T>(x.data(), gamma.data(), beta.data(), l, eps, r.y.data(), r.mean.data(), r.invstd.data());
    backward<T>(x.data(), gamma.data(), dy.data(), l, eps, r.dx.data(), r.dgamma.data(), r.dbeta.data());
    return r;
}

template <class T> std::vector<double> widen(const std::vector<T>& v) { return {v.begin(), v.end()}; }

/// The same tensor with its channel axis moved to the end (NCHW -> NHWC).
template <class T>
std::vector<T> channels_last(const std::vector<T>& x, const Shape& shape, int axis, Shape& out_shape) {
    const std::size_t rank = shape.size();
    out_shape.clear();
    for (std::size_t d = 0; d < rank; ++d)
        if (int(d) != axis) out_shape.push_back(shape[d]);
    out_shape.push_back(shape[axis]);
    std::vector<T> out(x.size());
    std::vector<std::int64_t> idx(rank, 0);
    for (std::size_t i = 0; i < x.size(); ++i) {
        std::int64_t j = 0;
        for (std::size_t d = 0; d < rank; ++d)
            if (int(d) != axis) j = j * shape[d] + idx[d];
        out[j * shape[axis] + idx[axis]] = x[i];
        for (std::size_t d = rank; d-- > 0;) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
    return out;
}

template <class T> void random_problems_against_naive(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    // eps = 0 and m = 2 make dx cancel exactly (x̂ = ±1), which the naive reference cannot
    // resolve; those are covered by the exact-answer test below.
    const double eps_choices[] = {1e-5, 1e-3, 1e-8, 0.1};
    for (int trial = 0; trial < 60; ++trial) {
        const int rank = 2 + int(rng() % 4);
        Shape shape(rank);
        for (auto& d : shape) d = 1 + std::int64_t(rng() % 6);
        int axis = int(rng() % rank);
        std::int64_t m = 1;
        for (int d = 0; d < rank; ++d)
            if (d != axis) m *= shape[d];
        if (m < 3) shape[(axis + 1) % rank] = 3;
        const int axis_arg = rng() % 2 ? axis : axis - rank; // negative spelling half the time
        const double eps = eps_choices[rng() % 4];
        CAPTURE(repro(shape, axis_arg, eps, dtype_of<T>()));

        const Layout l = collapse(shape, axis_arg);
        std::vector<T> x(l.size()), dy(l.size()), gamma(l.channels), beta(l.channels);
        for (auto& v : x) v = T(3 * normal(rng) + 1);
        for (auto& v : dy) v = T(normal(rng));
        for (auto& v : gamma) v = T(normal(rng));
        for (auto& v : beta) v = T(normal(rng));

        const Run<T> got = run_library(x, shape, axis_arg, gamma, beta, dy, eps);
        const test::NaiveResult want =
            test::naive_batchnorm(widen(x), shape, axis, widen(gamma), widen(beta), widen(dy), eps);
        // The naive result is good to ~1e-19 here: the library must be within its promise
        // (4 eps), and is in fact within about 1 eps (0.5 for the final rounding).
        CHECK(test::eps_error<T>(got.y, want.y) <= 2);
        CHECK(test::eps_error<T>(got.mean, want.mean) <= 2);
        CHECK(test::eps_error<T>(got.invstd, want.invstd) <= 2);
        CHECK(test::eps_error<T>(got.dx, want.dx) <= 2);
        CHECK(test::eps_error<T>(got.dgamma, want.dgamma) <= 2);
        CHECK(test::eps_error<T>(got.dbeta, want.dbeta) <= 2);

        // The same data laid out channels-last goes through the other tiling of the same
        // kernel (another (outer, C, inner)) and must be as accurate.
        Shape last_shape;
        const std::vector<T> x_last = channels_last(x, shape, axis, last_shape);
        const std::vector<T> dy_last = channels_last(dy, shape, axis, last_shape);
        const Run<T> last = run_library(x_last, last_shape, -1, gamma, beta, dy_last, eps);
        const test::NaiveResult want_last =
            test::naive_batchnorm(widen(x_last), last_shape, int(last_shape.size()) - 1, widen(gamma), widen(beta),
                                  widen(dy_last), eps);
        CHECK(test::eps_error<T>(last.y, want_last.y) <= 2);
        CHECK(test::eps_error<T>(last.dx, want_last.dx) <= 2);
        CHECK(test::eps_error<T>(last.mean, want.mean) <= 2);
        CHECK(test::eps_error<T>(last.invstd, want.invstd) <= 2);
        CHECK(test::eps_error<T>(last.dgamma, want.dgamma) <= 2);
        CHECK(test::eps_error<T>(last.dbeta, want.dbeta) <= 2);
    }
}

} // namespace

TEST_CASE("random shapes, axes and eps: float64 matches the naive reference") {
    random_problems_against_naive<double>(1);
}

TEST_CASE("random shapes, axes and eps: float32 matches the naive reference") {
    random_problems_against_naive<float>(2);
}

TEST_CASE("inputs with exactly known answers, far from zero") {
    // Per channel x = a + (−1, −1, 1, 1): mean a, biased var 1, with eps = 0 invstd 1 and
    // x̂ = (−1, −1, 1, 1). With dy = (1, 0, 0, 0): dβ = 1, dγ = −1 and
    // dx = γ·(dy − (dβ + x̂·dγ)/4) = γ·(1/2, −1/2, 0, 0). All exact in binary.
    for (double a : {0.0, 1e8, -3e15}) {
        CAPTURE(a);
        const Shape shape{4, 2}; // (N, C), channel 1 uses offset 2a
        const std::vector<double> x{a - 1, 2 * a - 1, a - 1, 2 * a - 1, a + 1, 2 * a + 1, a + 1, 2 * a + 1};
        const std::vector<double> gamma{3, -0.5}, beta{0.25, 7};
        const std::vector<double> dy{1, 0, 0, 2, 0, 0, 0, 0};
        const Run<double> r = run_library(x, shape, 1, gamma, beta, dy, 0.0);
        CHECK(r.mean == std::vector<double>{a, 2 * a});
        CHECK(r.invstd == std::vector<double>{1, 1});
        CHECK(r.y == std::vector<double>{-3 + 0.25, 0.5 + 7, -3 + 0.25, 0.5 + 7, 3.25, -0.5 + 7, 3.25, -0.5 + 7});
        CHECK(r.dbeta == std::vector<double>{1, 2});
        CHECK(r.dgamma == std::vector<double>{-1, -2});
        CHECK(r.dx == std::vector<double>{3 * 0.5, -0.5 * -1, 3 * -0.5, -0.5 * 1, 0, 0, 0, 0});
    }
}

TEST_CASE("backward matches central finite differences of f = sum(dy * y)") {
    std::mt19937_64 rng(3);
    std::normal_distribution<double> normal;
    const Shape shape{3, 2, 4};
    const Layout l = collapse(shape, 1);
    std::vector<double> x(l.size()), dy(l.size()), gamma{1.5, -0.7}, beta{0.1, 0.2};
    for (auto& v : x) v = normal(rng);
    for (auto& v : dy) v = normal(rng);
    const double eps = 1e-3;
    auto f = [&](const std::vector<double>& xx, const std::vector<double>& g, const std::vector<double>& b) {
        std::vector<double> y(xx.size());
        forward<double>(xx.data(), g.data(), b.data(), l, eps, y.data(), nullptr, nullptr);
        long double s = 0;
        for (std::size_t i = 0; i < y.size(); ++i) s += (long double)dy[i] * y[i];
        return double(s);
    };
    auto central = [&](std::vector<double>& v, std::size_t i, auto&& eval) {
        const double h = 1e-6, keep = v[i];
        v[i] = keep + h;
        const double up = eval();
        v[i] = keep - h;
        const double down = eval();
        v[i] = keep;
        return (up - down) / (2 * h);
    };
    std::vector<double> dx(x.size()), dgamma(2), dbeta(2);
    backward<double>(x.data(), gamma.data(), dy.data(), l, eps, dx.data(), dgamma.data(), dbeta.data());
    std::vector<double> num_dx(x.size()), num_dg(2), num_db(2);
    for (std::size_t i = 0; i < x.size(); ++i) num_dx[i] = central(x, i, [&] { return f(x, gamma, beta); });
    for (std::size_t c = 0; c < 2; ++c) {
        num_dg[c] = central(gamma, c, [&] { return f(x, gamma, beta); });
        num_db[c] = central(beta, c, [&] { return f(x, gamma, beta); });
    }
    // Central differences are good to ~1e-9 here; a wrong term is off by O(1).
    CHECK(test::eps_error<double>(dx, num_dx) * std::numeric_limits<double>::epsilon() < 1e-7);
    CHECK(test::eps_error<double>(dgamma, num_dg) * std::numeric_limits<double>::epsilon() < 1e-7);
    CHECK(test::eps_error<double>(dbeta, num_db) * std::numeric_limits<double>::epsilon() < 1e-7);
}

TEST_CASE("eps = 0 with a constant channel is refused, naming the channel, before any output") {
    const std::vector<double> x{1, 5, 2, 5, 3, 5}; // (3, 2): channel 1 is constant
    const Layout l = collapse(Shape{3, 2}, 1);
    std::vector<double> y(6, kSentinel);
    CHECK_THROWS_WITH_AS(forward<double>(x.data(), nullptr, nullptr, l, 0.0, y.data(), nullptr, nullptr),
                         doctest::Contains("channel 1 has zero variance and eps = 0"), InputError);
    CHECK(y == std::vector<double>(6, kSentinel));
    // With eps > 0 a constant channel is fine: x̂ = 0, so y = β.
    const std::vector<double> beta{0, 4};
    forward<double>(x.data(), nullptr, beta.data(), l, 1e-5, y.data(), nullptr, nullptr);
    CHECK(y[1] == 4);
    CHECK(y[3] == 4);
}

TEST_CASE("the exact kernel's channels: refused on first use of the two-step passes, before any output") {
    // Channel 1 is constant and beyond the fast path's range (2^480): the exact kernel
    // refuses it with eps = 0, when statistics, gradients or apply first need it.
    const std::vector<double> x{1, 3e200, 2, 3e200, 4, 3e200}, dy{1, 2, 3, 4, 5, 6};
    const Layout l = collapse(Shape{3, 2}, 1);
    std::vector<double> y(6, kSentinel), mean(2, kSentinel);
    const ForwardPass<double> fwd(x.data(), nullptr, nullptr, l, 0.0);
    CHECK(!fwd.inputs_proven_finite());
    CHECK_THROWS_WITH_AS(fwd.statistics(mean.data(), nullptr), doctest::Contains("channel 1 has zero variance"),
                         InputError);
    CHECK_THROWS_AS(fwd.apply(0, 3, y.data()), InputError);
    CHECK(y == std::vector<double>(6, kSentinel));
    CHECK(mean == std::vector<double>(2, kSentinel));
    const BackwardPass<double> bwd(x.data(), nullptr, dy.data(), l, 0.0);
    CHECK_THROWS_AS(bwd.gradients(mean.data(), nullptr), InputError);
    CHECK_THROWS_AS(bwd.apply(0, 3, y.data()), InputError);
    CHECK(y == std::vector<double>(6, kSentinel));
    CHECK_THROWS_AS(forward<double>(x.data(), nullptr, nullptr, l, 0.0, y.data(), nullptr, nullptr), InputError);
    CHECK(y == std::vector<double>(6, kSentinel));
}

TEST_CASE("non-finite inputs propagate only to their channel") {
    std::vector<double> x{1, 2, NAN, 4, 3, 8}; // (3, 2): channel 0 has the NaN
    const Layout l = collapse(Shape{3, 2}, 1);
    std::vector<double> y(6), dx(6);
    forward<double>(x.data(), nullptr, nullptr, l, 1e-5, y.data(), nullptr, nullptr);
    for (int i : {0, 2, 4}) CHECK(std::isnan(y[i]));
    for (int i : {1, 3, 5}) CHECK(std::isfinite(y[i]));
}

namespace {

/// inputs_proven_finite() on data with one NaN or infinity at `where` in x or dy (or
/// none: where < 0), through every kernel path of the shape and dtype.
template <class T> void check_proven_finite(const Shape& shape, int axis, std::uint64_t seed) {
    const Layout l = collapse(shape, axis);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    std::vector<T> x(l.size()), dy(l.size());
    for (auto& v : x) v = T(normal(rng));
    for (auto& v : dy) v = T(normal(rng));
    CHECK(ForwardPass<T>(x.data(), nullptr, nullptr, l, 1e-5).inputs_proven_finite());
    CHECK(BackwardPass<T>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
    const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
    const std::int64_t n = l.size(), somewhere = std::int64_t(rng() % std::uint64_t(n));
    const std::pair<std::int64_t, T> cases[] = {{0, nan}, {n - 1, inf}, {somewhere, -inf}, {n / 2, nan}};
    for (const auto& one_case : cases) {
        const std::int64_t where = one_case.first; // (clang 14 cannot capture a structured binding)
        const T b = one_case.second;
        CAPTURE(where);
        CAPTURE(b);
        const T keep_x = x[where], keep_dy = dy[where];
        x[where] = b;
        CHECK(!ForwardPass<T>(x.data(), nullptr, nullptr, l, 1e-5).inputs_proven_finite());
        CHECK(!BackwardPass<T>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
        x[where] = keep_x, dy[where] = b;
        CHECK(!BackwardPass<T>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
        dy[where] = keep_dy;
    }
}

} // namespace

TEST_CASE("a NaN or an infinity anywhere in x or dy keeps the inputs from being proven finite") {
    // The CLI skips its own scan for NaN and ±inf when a pass proves there are none.
    check_proven_finite<float>({8300, 64}, 1, 1);   // channels-last tiles; two blocks (backward)
    check_proven_finite<float>({3, 5, 40, 41}, 1, 2); // runs of one channel
    check_proven_finite<double>({8300, 64}, 1, 3);  // two blocks
    check_proven_finite<double>({3, 5, 40, 41}, 1, 4);
    // float64 beyond the fast kernels' range proves nothing, even when finite.
    std::vector<double> huge{1e200, -3e200, 2e200, 5e199};
    CHECK(!ForwardPass<double>(huge.data(), nullptr, nullptr, collapse(Shape{4, 1}, 1), 1e-5).inputs_proven_finite());
    // Nor does data summed centred on its mean (|μ|/σ = 1e6), just below 2^480 on average
    // but partly above: the range is judged on |x|, not on |x − μ|.
    const Layout l = collapse(Shape{3001, 32}, 1);
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal;
    std::vector<double> x(std::size_t(l.size())), dy(x.size());
    for (auto& v : x) v = 0x1p480 * (1 + 1e-6 * (normal(rng) - 1));
    for (auto& v : dy) v = normal(rng);
    CHECK(!ForwardPass<double>(x.data(), nullptr, nullptr, l, 1e-5).inputs_proven_finite());
    CHECK(!BackwardPass<double>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
    for (auto& v : x) v = v * 0.5; // all below 2^480: proven
    CHECK(ForwardPass<double>(x.data(), nullptr, nullptr, l, 1e-5).inputs_proven_finite());
    CHECK(BackwardPass<double>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
}

TEST_CASE("double-double to float rounds hi + lo correctly, ties included") {
    using detail::dd;
    const double one = 1.0, half_ulp = 0x1p-24; // 1 + 2^-24 is the midpoint of 1 and 1 + 2^-23
    CHECK(detail::to<float>(dd{one + half_ulp, 0x1p-80}) == 1.0f + 0x1p-23f);
    CHECK(detail::to<float>(dd{one + half_ulp, -0x1p-80}) == 1.0f);
    CHECK(detail::to<float>(dd{one + half_ulp, 0.0}) == 1.0f); // a true tie: to even
    CHECK(detail::to<float>(dd{one + 3 * half_ulp, -0x1p-80}) == 1.0f + 0x1p-23f);
    CHECK(detail::to<float>(dd{one + 3 * half_ulp, 0x1p-80}) == 1.0f + 0x1p-22f);
    // Just below a midpoint with lo > 0 pointing at it: stays below.
    CHECK(detail::to<float>(dd{std::nextafter(one + half_ulp, 0.0), 0x1p-60}) == 1.0f);
    CHECK(detail::to<float>(dd{-(one + half_ulp), -0x1p-80}) == -(1.0f + 0x1p-23f));
    // Midpoints between float subnormals, and the largest midpoint below overflow.
    CHECK(detail::to<float>(dd{0x3p-150, 0x1p-200}) == 0x1p-148f);
    CHECK(detail::to<float>(dd{0x3p-150, -0x1p-200}) == 0x1p-149f);
    CHECK(detail::to<float>(dd{0x1p-150, 0x1p-200}) == 0x1p-149f);
    CHECK(detail::to<float>(dd{0x1p-150, -0x1p-200}) == 0.0f);
    const double top_mid = 0x1.fffffep127 - 0x1p103; // between the two largest floats
    CHECK(detail::to<float>(dd{top_mid, 0x1p40}) == 0x1.fffffep127f);
    CHECK(detail::to<float>(dd{top_mid, -0x1p40}) == 0x1.fffffcp127f);
}

TEST_CASE("double-double to float, four and eight lanes at once: each lane as alone, ties included") {
    // The per-channel set-up rounds its outputs a vector at a time (detail::to_each): every
    // lane at once unless one of them may be a tie. Each case below sits in every lane of
    // vectors whose other lanes are the other cases, in turn.
    using detail::dd;
    const double one = 1.0, half_ulp = 0x1p-24, top_mid = 0x1.fffffep127 - 0x1p103;
    struct Case {
        dd x;
        float expected;
    };
    const std::vector<Case> cases{
        {{one + half_ulp, 0x1p-80}, 1.0f + 0x1p-23f},          // ties decided by lo
        {{one + half_ulp, -0x1p-80}, 1.0f},
        {{one + 3 * half_ulp, 0x1p-80}, 1.0f + 0x1p-22f},
        {{0x3p-150, -0x1p-200}, 0x1p-149f},                  // subnormal
        {{top_mid, 0x1p40}, 0x1.fffffep127f},                // the largest
        {{one + half_ulp, 0.0}, 1.0f},                        // a true tie: to even (lo 0)
        {{0.1, 0x1p-60}, 0.1f},                               // no tie
        {{-2.5, 1e-20}, -2.5f},                               // hi a float
        {{1e39, 1e20}, INFINITY},                             // overflow
        {{-0.0, 0.0}, -0.0f},
        {{3.0000001, -1e-25}, 3.0000001f},
        {{-7.25e-3, 1e-22}, -7.25e-3f},
    };
    const auto n = cases.size();
    auto check_lanes = [&](auto lanes_type) {
        using D = decltype(lanes_type);
        constexpr std::size_t L = sizeof(D) / sizeof(double);
        for (std::size_t start = 0; start < n; ++start) {
            detail::dd_of<D> v;
            for (std::size_t j = 0; j < L; ++j) v.hi[j] = cases[(start + j) % n].x.hi, v.lo[j] = cases[(start + j) % n].x.lo;
            float out[L];
            detail::to_each(out, v);
            for (std::size_t j = 0; j < L; ++j) {
                const Case& c = cases[(start + j) % n];
                CAPTURE(c.x.hi);
                CAPTURE(c.x.lo);
                CHECK(std::bit_cast<std::uint32_t>(out[j]) == std::bit_cast<std::uint32_t>(c.expected));
            }
        }
    };
    check_lanes(detail::simd::v4d{});
    check_lanes(detail::simd::v8d{});
    // Every lane an early one, with one NaN: rounded at once, NaN kept.
    detail::dd_of<detail::simd::v4d> v{{0.1, NAN, -2.5, 1e39}, {0x1p-60, 0.0, 0.0, 0.0}};
    float out[4];
    detail::to_each(out, v);
    CHECK(out[0] == 0.1f);
    CHECK(std::isnan(out[1]));
    CHECK(out[2] == -2.5f);
    CHECK(out[3] == INFINITY);
}

TEST_CASE("double-double 1/sqrt over the whole double range, subnormals included") {
    using detail::dd;
    // Powers of four have an exact answer; everything else is checked against long
    // double (64-bit significand, wider exponent range), which hi + lo must match to
    // well below its own precision.
    for (int e = -1074; e <= 1022; e += 2) {
        const dd r = detail::rsqrt(dd{std::ldexp(1.0, e), 0.0});
        CAPTURE(e);
        CHECK(r.hi == std::ldexp(1.0, -e / 2));
        CHECK(r.lo == 0.0);
    }
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> mantissa(1.0, 2.0);
    for (int e = -1074; e <= 1023; ++e) {
        const double x = std::ldexp(mantissa(rng), e); // rounds to a subnormal below 2^-1022
        if (!(x > 0) || !std::isfinite(x)) continue;
        const dd r = detail::rsqrt(dd{x, 0.0});
        const long double want = 1.0L / std::sqrt(static_cast<long double>(x));
        const long double got = static_cast<long double>(r.hi) + static_cast<long double>(r.lo);
        CAPTURE(x);
        CHECK(std::abs(got - want) <= 0x1p-62L * want);
        // four lanes at once (the per-channel set-up): each lane gets the bits of one x,
        // here with x in every lane position, next to values of other exponents
        for (int j = 0; j < 4; ++j) {
            detail::simd::v4d xs{0x1p-1074, 3.5, 0x1.8p1000, 0x1p-600};
            xs[j] = x;
            const detail::dd_of<detail::simd::v4d> rv = detail::rsqrt(detail::dd_of<detail::simd::v4d>{xs, {}});
            for (int k = 0; k < 4; ++k) {
                const dd one = detail::rsqrt(dd{xs[k], 0.0});
                CHECK(rv.hi[k] == one.hi);
                CHECK(rv.lo[k] == one.lo);
            }
        }
    }
}

// ---- the fast kernel on tensors large enough for many tiles, blocks and threads ----------

#include "../lib/src/batchnorm_exact.hpp"

namespace {

/// Ill-conditioned data of one class, for large tensors where mpmath would be too slow.
template <class T> void fill_hard(std::vector<T>& x, std::vector<T>& dy, std::uint64_t seed, int kind) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    std::cauchy_distribution<double> cauchy;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double z = normal(rng);
        switch (kind) {
        case 0: x[i] = T(1e8 + 1e-2 * z); break;           // offset, tiny spread (float64)
        case 1: x[i] = T(1e4 + z); break;                   // float32 offset data
        case 2: x[i] = T(cauchy(rng)); break;               // heavy tails
        default: x[i] = T(3 * z); break;
        }
    }
    // dy = a + b·x (nearly): dx cancels to ~1e-10 of its terms
    for (std::size_t i = 0; i < x.size(); ++i) dy[i] = T(0.5 + 2 * (double(x[i]) - (kind == 0 ? 1e8 : kind == 1 ? 1e4 : 0)) + 1e-10 * normal(rng));
}

template <class T> void large_problem(const Shape& shape, int axis, int kind, double eps) {
    const Layout l = collapse(shape, axis);
    CAPTURE(repro(shape, axis, eps, dtype_of<T>()));
    CAPTURE(kind);
    std::vector<T> x(l.size()), dy(l.size()), gamma(l.channels), beta(l.channels);
    fill_hard(x, dy, 100 + kind, kind);
    for (std::int64_t c = 0; c < l.channels; ++c) gamma[c] = T(1 + 0.1 * c), beta[c] = T(0.5 - 0.01 * c);

    // The exact (all double-double, single-threaded) kernel is the reference here: the
    // golden tests show it correctly rounded on every class of difficulty.
    const auto C = std::size_t(l.channels);
    std::vector<T> y0(x.size()), m0(C), i0(C), dx0(x.size()), dg0(C), db0(C);
    detail::forward_exact<T>(x.data(), l, gamma.data(), beta.data(), eps, y0.data(), m0.data(), i0.data());
    detail::backward_exact<T>(x.data(), gamma.data(), dy.data(), l, eps, dx0.data(), dg0.data(), db0.data());

    std::vector<T> y1(x.size()), m1(C), i1(C), dx1(x.size()), dg1(C), db1(C);
    for (int threads : {1, 2, 3}) {
        CAPTURE(threads);
        std::vector<T> y(x.size()), m(C), inv(C), dx(x.size()), dg(C), db(C);
        forward<T>(x.data(), gamma.data(), beta.data(), l, eps, y.data(), m.data(), inv.data(), threads);
        backward<T>(x.data(), gamma.data(), dy.data(), l, eps, dx.data(), dg.data(), db.data(), threads);
        if (threads == 1) {
            y1 = y, m1 = m, i1 = inv, dx1 = dx, dg1 = dg, db1 = db;
            CHECK(test::eps_error<T>(y, widen(y0)) <= 2);
            CHECK(test::eps_error<T>(m, widen(m0)) <= 2);
            CHECK(test::eps_error<T>(inv, widen(i0)) <= 2);
            CHECK(test::eps_error<T>(dx, widen(dx0)) <= 2);
            CHECK(test::eps_error<T>(dg, widen(dg0)) <= 2);
            CHECK(test::eps_error<T>(db, widen(db0)) <= 2);
        } else { // bitwise the same for any thread count
            CHECK(y == y1);
            CHECK(m == m1);
            CHECK(inv == i1);
            CHECK(dx == dx1);
            CHECK(dg == dg1);
            CHECK(db == db1);
        }
    }
}

} // namespace

TEST_CASE("large tensors: the fast kernel is as accurate as the exact one, and thread-count independent") {
    for (int kind : {0, 2, 3}) {
        large_problem<double>({4096, 24}, 1, kind, 1e-8);      // (N, C): whole-row tiles
        large_problem<double>({8, 6, 96, 96}, 1, kind, 1e-5);  // NCHW: segments of long rows
        large_problem<double>({16, 20, 20, 12}, -1, kind, 1e-3); // NHWC
        large_problem<double>({40000, 12}, 1, kind, 1e-5);       // two blocks (backward), merged
    }
    for (int kind : {1, 2, 3}) {
        large_problem<float>({4096, 24}, 1, kind, 1e-5);
        large_problem<float>({3001, 23}, 1, kind, 1e-5); // channel chunks of 16, 8, 4 and 1; a part tile
        large_problem<float>({8, 6, 96, 96}, 1, kind, 1e-5);
        large_problem<float>({16, 20, 20, 12}, -1, kind, 1e-8);
    }
}

TEST_CASE("a channel's outputs depend on its own data only, whichever kernel its neighbours need") {
    // Channels 1 to 5 are ordinary; channel 0 is ordinary in one run and, in the others, of
    // a magnitude (1e300, 1e-300) or finiteness (NaN) that sends it to the exact kernel.
    // The per-channel set-up takes channels four at a time when all four are ordinary, so
    // channels 1 to 3 are computed as vector lanes in the first run and one by one after.
    constexpr std::int64_t C = 6, rows = 300;
    const Shape shape{rows, C};
    const Layout l = collapse(shape, 1);
    std::mt19937_64 rng(9);
    std::normal_distribution<double> normal;
    std::vector<double> x(l.size()), dy(l.size()), gamma(C), beta(C);
    for (auto& v : x) v = normal(rng);
    for (auto& v : dy) v = normal(rng);
    for (auto& v : gamma) v = normal(rng);
    for (auto& v : beta) v = normal(rng);
    auto others = [&](const std::vector<double>& xs) { // the outputs of channels 1 to C − 1
        std::vector<double> y(xs.size()), dx(xs.size()), m(C), s(C), dg(C), db(C);
        forward<double>(xs.data(), gamma.data(), beta.data(), l, 1e-5, y.data(), m.data(), s.data());
        backward<double>(xs.data(), gamma.data(), dy.data(), l, 1e-5, dx.data(), dg.data(), db.data());
        std::vector<double> out;
        for (std::int64_t c = 1; c < C; ++c) {
            out.insert(out.end(), {m[c], s[c], dg[c], db[c]});
            for (std::int64_t o = 0; o < rows; ++o) out.push_back(y[o * C + c]), out.push_back(dx[o * C + c]);
        }
        return out;
    };
    const std::vector<double> reference = others(x);
    for (double scale : {1e300, 1e-300, double(NAN)}) {
        CAPTURE(scale);
        std::vector<double> xs = x;
        for (std::int64_t o = 0; o < rows; ++o) xs[o * C] *= scale;
        CHECK(others(xs) == reference);
    }
}

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
                for (std::int64_t o = 0; o < l.outer; ++o)
                    for (std::int64_t k = 0; k < l.inner; ++k) x[(o * l.channels + 1) * l.inner + k] *= 1e300;
            std::vector<double> y(l.size()), dx(l.size());
            forward<double>(x.data(), gamma.data(), beta.data(), l, 1e-5, y.data(), nullptr, nullptr);
            backward<double>(x.data(), gamma.data(), dy.data(), l, 1e-5, dx.data(), nullptr, nullptr);

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
            CHECK(y2 == y);
            CHECK(dx2 == dx);
        }
    }
}

namespace {

/// forward() and backward() take tensors with runs a group of channels at a time from
/// `bytes` of input, while this lives (else from the size of the last-level cache).
struct GroupsFrom {
    explicit GroupsFrom(std::int64_t bytes) { detail::set_group_threshold(bytes); }
    ~GroupsFrom() { detail::set_group_threshold(0); }
    GroupsFrom(const GroupsFrom&) = delete;
    GroupsFrom& operator=(const GroupsFrom&) = delete;
};

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

    const test::NaiveResult want =
        test::naive_batchnorm(widen(x), shape, normalize_axis(axis, shape.size()), widen(gamma), widen(beta),
                              widen(dy), 1e-5);
    CHECK(test::eps_error<T>(std::span<const T>(y), want.y) <= 2);
    CHECK(test::eps_error<T>(std::span<const T>(dx), want.dx) <= 2);
    CHECK(test::eps_error<T>(mean, want.mean) <= 2);
    CHECK(test::eps_error<T>(dg, want.dgamma) <= 2);

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
        streamed_outputs<double>({32768, 64}, 1, shift);
        streamed_outputs<double>({8, 4, 256, 256}, 1, shift);
    }
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

TEST_CASE("channel groups: for tensors with runs larger than the last-level cache, of up to 1 MiB") {
    using detail::channels_per_group;
    const auto nchw = [](std::int64_t n, std::int64_t c, std::int64_t hw) { return collapse(Shape{n, c, hw}, 1); };
    // by default from the cache's size: (32, 64, 56, 56) float32 is 25.7 MB a tensor
    const std::int64_t cache = detail::group_threshold();
    CHECK(cache > 0);
    CHECK(channels_per_group(nchw(1, 3, 1000), 1e-5, 2, 4) == 0); // small
    constexpr std::int64_t row = 4096 * 64 * 8; // bytes of x and dy of (1, 4096, 64) float32
    CHECK(channels_per_group(nchw(cache / row + 1, 4096, 64), 1e-5, 2, 4) > 0);   // just over the cache
    CHECK(channels_per_group(nchw((cache - 1) / row, 4096, 64), 1e-5, 2, 4) == 0); // just under
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

TEST_CASE("a group of channels at a time: the bits of the passes over the whole tensor, hard channels too") {
    // forward() and backward() take large NCHW tensors a group of channels at a time
    // (each group's two passes while its data is in cache), the two-step passes over the
    // whole tensor; both must give every channel the same bits, whatever route its data
    // takes: dy nearly linear in x (float32: the channels fail the plain sums, on the
    // preview of the first rows and after, and take the biased ones and the careful pass
    // B), a NaN (the exact kernel, on its group's values), x far from 0 (float64: centred
    // sums), magnitudes beyond the fast range (float64: the exact kernel). And each
    // channel must match the exact kernel, on one thread or two.
    const GroupsFrom groups(1); // (these tensors fit in the last-level cache)
    auto check = []<class T>(T, const Shape& shape, double eps, auto&& make) {
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
        std::vector<T> y0(n), dx0(n), m0(C), s0(C), dg0(C), db0(C);
        detail::forward_exact<T>(x.data(), l, gamma.data(), beta.data(), eps, y0.data(), m0.data(), s0.data());
        detail::backward_exact<T>(x.data(), gamma.data(), dy.data(), l, eps, dx0.data(), dg0.data(), db0.data());
        std::vector<T> y2(n), dx2(n), m2(C), s2(C), dg2(C), db2(C); // the passes over the whole tensor
        const ForwardPass<T> fp(x.data(), gamma.data(), beta.data(), l, eps, 2);
        fp.statistics(m2.data(), s2.data());
        fp.apply(0, l.outer, y2.data());
        const BackwardPass<T> bp(x.data(), gamma.data(), dy.data(), l, eps, 2);
        bp.gradients(dg2.data(), db2.data());
        bp.apply(0, l.outer, dx2.data());
        const auto same_bits = [](const std::vector<T>& a, const std::vector<T>& b) {
            return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0; // (NaN too)
        };
        const auto of_channel = [&](const std::vector<T>& v, std::int64_t c) {
            std::vector<double> out;
            for (std::int64_t o = 0; o < l.outer; ++o)
                for (std::int64_t k = 0; k < l.inner; ++k) out.push_back(double(v[std::size_t((o * l.channels + c) * l.inner + k)]));
            return out;
        };
        for (int threads : {1, 2}) {
            CAPTURE(threads);
            std::vector<T> y(n, T(kSentinel)), dx(n, T(kSentinel)), m(C), s(C), dg(C), db(C);
            forward<T>(x.data(), gamma.data(), beta.data(), l, eps, y.data(), m.data(), s.data(), threads);
            backward<T>(x.data(), gamma.data(), dy.data(), l, eps, dx.data(), dg.data(), db.data(), threads);
            CHECK(same_bits(y, y2));
            CHECK(same_bits(m, m2));
            CHECK(same_bits(s, s2));
            CHECK(same_bits(dx, dx2));
            CHECK(same_bits(dg, dg2));
            CHECK(same_bits(db, db2));
            for (std::int64_t c = 0; c < l.channels; ++c) {
                CAPTURE(c);
                const auto i = std::size_t(c);
                if (std::isnan(m0[i])) { // the NaN's channel: NaN throughout
                    CHECK(std::isnan(m[i]));
                    CHECK(std::isnan(dx[i * std::size_t(l.inner)]));
                    continue;
                }
                const std::vector<double> yc = of_channel(y, c), dxc = of_channel(dx, c);
                CHECK(test::eps_error<T>(std::vector<T>(yc.begin(), yc.end()), of_channel(y0, c)) <= 2);
                CHECK(test::eps_error<T>(std::vector<T>(dxc.begin(), dxc.end()), of_channel(dx0, c)) <= 2);
                CHECK(test::eps_error<T>(std::vector<T>{m[i], s[i], dg[i], db[i]},
                                         std::vector<double>{m0[i], s0[i], dg0[i], db0[i]}) <= 2);
            }
        }
    };
    const auto channel = [](auto& v, const Layout& l, std::int64_t c, auto&& f) {
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t k = 0; k < l.inner; ++k) f(v[std::size_t((o * l.channels + c) * l.inner + k)]);
    };
    // float32 (64, 64, 1024): eight blocks of eight rows (the preview), groups of two
    // channels (backward) and four (forward); dx ~1e-7 of its terms (eps = 1e-12)
    check(float{}, Shape{64, 64, 1024}, 1e-12, [&](std::vector<float>& x, std::vector<float>& dy, const Layout& l) {
        std::mt19937_64 rng(7);
        std::normal_distribution<double> normal;
        for (auto& v : x) v = float(normal(rng));
        for (std::size_t i = 0; i < x.size(); ++i) dy[i] = float(0.5 + 2 * double(x[i]) + 5e-7 * normal(rng));
        channel(dy, l, 5, [&](float& v) { v = float(normal(rng)); }); // an ordinary channel among them
        bool first = true;
        channel(x, l, 9, [&](float& v) { v = first ? NAN : v, first = false; });
    });
    // float64 (128, 64, 256): eight blocks of 16 rows (the preview, two rows: it gives
    // channel 3 its centre), groups of two channels (backward) and four (forward)
    check(double{}, Shape{128, 64, 256}, 1e-5, [&](std::vector<double>& x, std::vector<double>& dy, const Layout& l) {
        std::mt19937_64 rng(8);
        std::normal_distribution<double> normal;
        for (auto& v : x) v = normal(rng);
        for (auto& v : dy) v = normal(rng);
        channel(x, l, 3, [](double& v) { v += 1e9; });
        channel(x, l, 4, [](double& v) { v *= 1e300; });
        channel(x, l, 63, [](double& v) { v *= 1e-300; });
    });
}

namespace {

/// Channel c's values of a (outer, C, inner) tensor, in order.
template <class T> std::vector<double> channel_values(const std::vector<T>& v, const Layout& l, std::int64_t c) {
    std::vector<double> out;
    for (std::int64_t o = 0; o < l.outer; ++o)
        for (std::int64_t k = 0; k < l.inner; ++k) out.push_back(double(v[std::size_t((o * l.channels + c) * l.inner + k)]));
    return out;
}

/// Half the values random with magnitudes 2^-40 to 1, the other half their negatives, plus
/// 2^-40: the sum is tiny against the values, and plain double sums of them round.
std::vector<float> cancelling_values(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    std::uniform_int_distribution<int> exponent(-40, 0);
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n / 2; ++i) v[i] = float(std::ldexp(normal(rng), exponent(rng)));
    for (std::size_t i = 0; i < n / 2; ++i) v[n / 2 + i] = -v[i];
    std::shuffle(v.begin() + std::ptrdiff_t(n / 2), v.end(), rng); // so that no partial sums mirror
    for (auto& e : v) e += 0x1p-40f;
    return v;
}

/// g less its projection on x − mean(x) (in long double), rounded to float: Σ g·(x − μ) of
/// the result is about 2^-24 of its terms, a dγ near 0.
std::vector<float> without_projection(const std::vector<double>& g, const std::vector<double>& x) {
    long double sx = 0, sxx = 0, sgx = 0;
    for (double v : x) sx += v;
    const long double mu = sx / (long double)x.size();
    for (std::size_t i = 0; i < x.size(); ++i) sxx += (x[i] - mu) * (x[i] - mu), sgx += g[i] * (x[i] - mu);
    std::vector<float> out(g.size());
    for (std::size_t i = 0; i < g.size(); ++i) out[i] = float(g[i] - sgx / sxx * (x[i] - mu));
    return out;
}

} // namespace

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
            std::vector<T> want(n), dg0(C), db0(C); // the all-double-double kernel (checked against mpmath)
            detail::backward_exact<T>(x.data(), gamma.data(), dy.data(), l, 1e-5, want.data(), dg0.data(), db0.data());
            CHECK(test::eps_error<T>(std::span<const T>(got), widen(want)) <= 2);
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
        auto set_channel0 = [&](std::vector<float>& t, const std::vector<float>& values) {
            std::size_t i = 0;
            for (std::int64_t o = 0; o < l.outer; ++o)
                for (std::int64_t k = 0; k < l.inner; ++k) t[std::size_t(o * l.channels * l.inner + k)] = values[i++];
        };
        std::vector<double> channel1_reference;
        for (int kind : {0, 1, 2, 3}) {
            CAPTURE(kind);
            std::vector<float> xs = x, dys = dy;
            if (kind == 1) set_channel0(xs, cancelling_values(n, 5)), set_channel0(dys, cancelling_values(n, 6));
            if (kind == 2) {
                const std::vector<double> x0 = channel_values(xs, l, 0);
                set_channel0(dys, std::vector<float>(x0.begin(), x0.end()));
            }
            if (kind == 3) set_channel0(dys, without_projection(channel_values(dys, l, 0), channel_values(xs, l, 0)));
            const std::size_t N = xs.size();
            std::vector<float> y(N), m(2), s(2), dx(N), dg(2), db(2), y0(N), m0(2), s0(2), dx0(N), dg0(2), db0(2);
            forward<float>(xs.data(), nullptr, nullptr, l, 1e-5, y.data(), m.data(), s.data());
            backward<float>(xs.data(), nullptr, dys.data(), l, 1e-5, dx.data(), dg.data(), db.data());
            detail::forward_exact<float>(xs.data(), l, nullptr, nullptr, 1e-5, y0.data(), m0.data(), s0.data());
            detail::backward_exact<float>(xs.data(), nullptr, dys.data(), l, 1e-5, dx0.data(), dg0.data(), db0.data());
            for (std::int64_t c = 0; c < 2; ++c) {
                CAPTURE(c);
                const auto one = [&](const std::vector<float>& v) { return std::vector<float>{v[std::size_t(c)]}; };
                const auto exact_one = [&](const std::vector<float>& v) { return std::vector<double>{double(v[std::size_t(c)])}; };
                const auto per_channel = [&](const std::vector<float>& v) {
                    const std::vector<double> d = channel_values(v, l, c);
                    return std::vector<float>(d.begin(), d.end());
                };
                CHECK(test::eps_error<float>(per_channel(y), channel_values(y0, l, c)) <= 2);
                CHECK(test::eps_error<float>(per_channel(dx), channel_values(dx0, l, c)) <= 2);
                CHECK(test::eps_error<float>(one(m), exact_one(m0)) <= 2);
                CHECK(test::eps_error<float>(one(s), exact_one(s0)) <= 2);
                CHECK(test::eps_error<float>(one(dg), exact_one(dg0)) <= 2);
                CHECK(test::eps_error<float>(one(db), exact_one(db0)) <= 2);
            }
            std::vector<double> channel1 = channel_values(y, l, 1);
            for (double v : channel_values(dx, l, 1)) channel1.push_back(v);
            for (const auto* v : {&m, &s, &dg, &db}) channel1.push_back(double((*v)[1]));
            if (kind == 0) channel1_reference = channel1;
            else CHECK(channel1 == channel1_reference);
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
        auto set_channel0 = [&](std::vector<double>& t, const std::vector<double>& values) {
            std::size_t i = 0;
            for (std::int64_t o = 0; o < l.outer; ++o)
                for (std::int64_t k = 0; k < l.inner; ++k) t[std::size_t(o * l.channels * l.inner + k)] = values[i++];
        };
        std::vector<double> channel1_reference;
        for (int kind : {0, 1, 2, 3, 4, 5}) {
            CAPTURE(kind);
            std::vector<double> xs = x, dys = dy, v0(n);
            if (kind == 1) {
                for (auto& v : v0) v = 1e9 + normal(rng);
                set_channel0(xs, v0);
            }
            if (kind == 2) {
                for (std::size_t i = 0; i < n / 2; ++i) v0[i] = normal(rng), v0[n / 2 + i] = -v0[i];
                std::shuffle(v0.begin(), v0.end(), rng);
                set_channel0(xs, v0);
            }
            if (kind == 3) set_channel0(dys, channel_values(xs, l, 0));
            if (kind == 4) {
                for (auto& v : v0) v = std::ldexp(normal(rng), exponent(rng));
                set_channel0(xs, v0);
            }
            if (kind == 5) {
                for (auto& v : v0) v = 300 + normal(rng);
                set_channel0(xs, v0);
            }
            const std::size_t N = xs.size();
            std::vector<double> y(N), m(C), s(C), dx(N), dg(C), db(C), y0(N), m0(C), s0(C), dx0(N), dg0(C), db0(C);
            forward<double>(xs.data(), gamma.data(), beta.data(), l, 1e-5, y.data(), m.data(), s.data());
            backward<double>(xs.data(), gamma.data(), dys.data(), l, 1e-5, dx.data(), dg.data(), db.data());
            detail::forward_exact<double>(xs.data(), l, gamma.data(), beta.data(), 1e-5, y0.data(), m0.data(), s0.data());
            detail::backward_exact<double>(xs.data(), gamma.data(), dys.data(), l, 1e-5, dx0.data(), dg0.data(),
                                           db0.data());
            for (std::int64_t c = 0; c < 2; ++c) {
                CAPTURE(c);
                const auto one = [&](const std::vector<double>& v) { return std::vector<double>{v[std::size_t(c)]}; };
                CHECK(test::eps_error<double>(channel_values(y, l, c), channel_values(y0, l, c)) <= 2);
                CHECK(test::eps_error<double>(channel_values(dx, l, c), channel_values(dx0, l, c)) <= 2);
                CHECK(test::eps_error<double>(one(m), one(m0)) <= 2);
                CHECK(test::eps_error<double>(one(s), one(s0)) <= 2);
                CHECK(test::eps_error<double>(one(dg), one(dg0)) <= 2);
                CHECK(test::eps_error<double>(one(db), one(db0)) <= 2);
            }
            std::vector<double> channel1 = channel_values(y, l, 1);
            for (double v : channel_values(dx, l, 1)) channel1.push_back(v);
            for (const auto* v : {&m, &s, &dg, &db}) channel1.push_back((*v)[1]);
            if (kind == 0) channel1_reference = channel1;
            else CHECK(channel1 == channel1_reference);
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
        std::vector<double> dx(x.size()), dg(C), db(C), dx0(x.size()), dg0(C), db0(C);
        backward<double>(x.data(), gamma.data(), dy.data(), l, 0, dx.data(), dg.data(), db.data());
        detail::backward_exact<double>(x.data(), gamma.data(), dy.data(), l, 0, dx0.data(), dg0.data(), db0.data());
        for (std::int64_t c = 0; c < l.channels; ++c) {
            CAPTURE(c);
            CHECK(test::eps_error<double>(channel_values(dx, l, c), channel_values(dx0, l, c)) <= 2);
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
        std::vector<double> y(x.size()), m(n), s(n), dx(x.size()), dg(n), db(n);
        forward<double>(x.data(), gamma.data(), beta.data(), l, 1e-5, y.data(), m.data(), s.data());
        backward<double>(x.data(), gamma.data(), dy.data(), l, 1e-5, dx.data(), dg.data(), db.data());
        for (std::int64_t c = 0; c < C; ++c) {
            CAPTURE(c);
            const std::vector<double> xc = channel_values(x, l, c), dyc = channel_values(dy, l, c);
            const auto k = std::size_t(c);
            std::vector<double> y1(xc.size()), dx1(xc.size());
            double m1, s1, dg1, db1;
            forward<double>(xc.data(), &gamma[k], &beta[k], alone, 1e-5, y1.data(), &m1, &s1);
            backward<double>(xc.data(), &gamma[k], dyc.data(), alone, 1e-5, dx1.data(), &dg1, &db1);
            CHECK(channel_values(y, l, c) == y1);
            CHECK(channel_values(dx, l, c) == dx1);
            CHECK(std::vector<double>{m[k], s[k], dg[k], db[k]} == std::vector<double>{m1, s1, dg1, db1});
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
    std::vector<float> y(x.size()), m(n), s(n), dx(x.size()), dg(n), db(n);
    forward<float>(xf.data(), gamma.data(), beta.data(), l, 1e-5, y.data(), m.data(), s.data());
    backward<float>(x.data(), gamma.data(), dy.data(), l, 1e-5, dx.data(), dg.data(), db.data());
    for (std::int64_t c = 0; c < C; ++c) {
        CAPTURE(c);
        const auto values = [&](const std::vector<float>& v) {
            const std::vector<double> d = channel_values(v, l, c);
            return std::vector<float>(d.begin(), d.end());
        };
        const std::vector<float> xc = values(x), xfc = values(xf), dyc = values(dy);
        const auto k = std::size_t(c);
        std::vector<float> y1(xc.size()), dx1(xc.size());
        float m1, s1, dg1, db1;
        forward<float>(xfc.data(), &gamma[k], &beta[k], alone, 1e-5, y1.data(), &m1, &s1);
        backward<float>(xc.data(), &gamma[k], dyc.data(), alone, 1e-5, dx1.data(), &dg1, &db1);
        CHECK(values(y) == y1);
        CHECK(values(dx) == dx1);
        CHECK(std::vector<float>{m[k], s[k], dg[k], db[k]} == std::vector<float>{m1, s1, dg1, db1});
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
        std::vector<double> dx(x.size()), dg(C), db(C), dx0(x.size()), dg0(C), db0(C);
        backward<double>(x.data(), gamma.data(), dy.data(), l, 0, dx.data(), dg.data(), db.data());
        detail::backward_exact<double>(x.data(), gamma.data(), dy.data(), l, 0, dx0.data(), dg0.data(), db0.data());
        for (std::int64_t c = 0; c < C; ++c) {
            CAPTURE(c);
            CHECK(test::eps_error<double>(channel_values(dx, l, c), channel_values(dx0, l, c)) <= 1);
            const auto k = std::size_t(c);
            CHECK(test::eps_error<double>(std::vector<double>{dg[k]}, std::vector<double>{dg0[k]}) <= 1);
        }
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

TEST_CASE("float64 channels summed again: one at a time or all in one pass, the same bits") {
    // Channels-last data re-sums one failing channel alone, and several in one pass over
    // the tensor (reading one channel alone touches every line). Channel 0 fails its
    // certificate in both runs, channel 1 only in the second: channel 0's outputs must not
    // change, and must match the exact kernel. Two ways to fail: |μ|/σ = 1e9 (the biased
    // sums centred on the mean pass), and that with dy = (x − 1e9) + 1e-10·noise (dx is
    // 1e-10 of its terms: they fail too, and the error-free sums take it). Two blocks:
    // the full pass merges them four channels at a time, the channel alone by itself.
    constexpr std::int64_t rows = 60000, C = 5;
    const Shape shape{rows, C};
    const Layout l = collapse(shape, 1);
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
        auto channel0 = [&](const std::vector<double>& xs, const std::vector<double>& dys) {
            std::vector<double> y(xs.size()), dx(xs.size()), m(C), s(C), dg(C), db(C);
            forward<double>(xs.data(), nullptr, nullptr, l, 1e-5, y.data(), m.data(), s.data());
            backward<double>(xs.data(), nullptr, dys.data(), l, 0, dx.data(), dg.data(), db.data());
            std::vector<double> y0(xs.size()), dx0(xs.size()), m0(C), s0(C);
            detail::forward_exact<double>(xs.data(), l, nullptr, nullptr, 1e-5, y0.data(), m0.data(), s0.data());
            detail::backward_exact<double>(xs.data(), nullptr, dys.data(), l, 0, dx0.data(), nullptr, nullptr);
            CHECK(test::eps_error<double>(channel_values(y, l, 0), channel_values(y0, l, 0)) <= 2);
            CHECK(test::eps_error<double>(channel_values(dx, l, 0), channel_values(dx0, l, 0)) <= 2);
            CHECK(test::eps_error<double>(std::vector<double>{m[0], s[0]}, std::vector<double>{m0[0], s0[0]}) <= 2);
            std::vector<double> out{m[0], s[0], dg[0], db[0]};
            for (double v : channel_values(y, l, 0)) out.push_back(v);
            for (double v : channel_values(dx, l, 0)) out.push_back(v);
            return out;
        };
        std::vector<double> x1 = x, dy1 = dy;
        make_hard(x1, dy1, 0);
        std::vector<double> x2 = x1, dy2 = dy1;
        make_hard(x2, dy2, 1);
        CHECK(channel0(x1, dy1) == channel0(x2, dy2));
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
            for (std::int64_t o = 0; o < rows; ++o) g[std::size_t(o * C + c)] = v[std::size_t(o)];
        };
        auto channel0 = [&](const std::vector<float>& g) {
            std::vector<float> y(x.size()), dx(x.size()), m(C), s(C), dg(C), db(C), dx0(x.size()), dg0(C), db0(C);
            forward<float>(x.data(), nullptr, nullptr, l, 1e-5, y.data(), m.data(), s.data());
            backward<float>(x.data(), nullptr, g.data(), l, eps, dx.data(), dg.data(), db.data());
            detail::backward_exact<float>(x.data(), nullptr, g.data(), l, eps, dx0.data(), dg0.data(), db0.data());
            const std::vector<double> got = channel_values(dx, l, 0);
            CHECK(test::eps_error<float>(std::vector<float>(got.begin(), got.end()), channel_values(dx0, l, 0)) <= 2);
            CHECK(test::eps_error<float>(std::vector<float>{dg[0]}, std::vector<double>{dg0[0]}) <= 2);
            std::vector<double> out{m[0], s[0], dg[0], db[0]};
            for (double v : channel_values(dx, l, 0)) out.push_back(v);
            return out;
        };
        std::vector<float> one = dy;
        make_hard(one, 0);
        std::vector<float> two = one;
        make_hard(two, 1);
        CHECK(channel0(one) == channel0(two));
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
    const Shape shape{rows, C};
    const Layout l = collapse(shape, 1);
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
    auto dx_of = [&](const std::vector<float>& g) {
        std::vector<float> dx(x.size()), dx0(x.size());
        backward<float>(x.data(), nullptr, g.data(), l, 0, dx.data(), nullptr, nullptr);
        detail::backward_exact<float>(x.data(), nullptr, g.data(), l, 0, dx0.data(), nullptr, nullptr);
        for (std::int64_t c = 0; c < C; ++c) {
            CAPTURE(c);
            const std::vector<double> got = channel_values(dx, l, c);
            CHECK(test::eps_error<float>(std::vector<float>(got.begin(), got.end()), channel_values(dx0, l, c)) <= 2);
        }
        return channel_values(dx, l, 1);
    };
    const std::vector<double> reference = dx_of(all); // every channel: double-double pass B in one pass
    CHECK(dx_of(only1) == reference);                  // channel 1 alone after the plain pass B
    CHECK(dx_of(first4) == reference);                 // channels 0 to 3 as four lanes after it
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
            std::size_t i = 0;
            for (std::int64_t o = 0; o < l.outer; ++o)
                for (std::int64_t j = 0; j < l.inner; ++j, ++i) {
                    const auto at = std::size_t((o * l.channels + c) * l.inner + j);
                    x[at] = xs[i], dy[at] = gs[i];
                }
        }
        const std::size_t N = x.size(), C = std::size_t(l.channels);
        std::vector<float> y(N), m(C), s(C), y0(N), m0(C), s0(C);
        forward<float>(x.data(), nullptr, nullptr, l, 1e-5, y.data(), m.data(), s.data());
        detail::forward_exact<float>(x.data(), l, nullptr, nullptr, 1e-5, y0.data(), m0.data(), s0.data());
        std::vector<float> dx(N), dg(C), db(C), dx0(N), dg0(C), db0(C);
        backward<float>(x.data(), nullptr, dy.data(), l, 1e-5, dx.data(), dg.data(), db.data());
        detail::backward_exact<float>(x.data(), nullptr, dy.data(), l, 1e-5, dx0.data(), dg0.data(), db0.data());
        const auto first = std::size_t(k.special[0]);
        CHECK(std::abs(m0[first] - t / 2) < 1e-3 * t); // the sums are what they are meant to be
        CHECK(std::abs(db0[first] - t * double(l.per_channel()) / 2) < 1e-3 * t * double(l.per_channel()));
        for (std::int64_t c = 0; c < l.channels; ++c) { // each output on its own channel's scale
            CAPTURE(c);
            const auto i = std::size_t(c);
            const auto values = [&](const std::vector<float>& v) {
                const std::vector<double> d = channel_values(v, l, c);
                return std::vector<float>(d.begin(), d.end());
            };
            for (const auto& [got, want] : {std::pair{&m, &m0}, {&s, &s0}, {&dg, &dg0}, {&db, &db0}})
                CHECK(test::eps_error<float>(std::vector<float>{(*got)[i]}, std::vector<double>{(*want)[i]}) <= 2);
            CHECK(test::eps_error<float>(values(y), channel_values(y0, l, c)) <= 2);
            CHECK(test::eps_error<float>(values(dx), channel_values(dx0, l, c)) <= 2);
        }
    }
}

TEST_CASE("the first stage previewed on the first rows: skipped by the channels that fail it, exact") {
    // In tensors of at least four blocks, pass A first tries the first stage (float32:
    // plain sums; float64: biased) on an eighth of the first block; a channel that fails
    // there starts at the second stage (float32: biased; float64: centred on the preview's
    // mean), and when every channel does, the first stage is skipped. Channel 0 is hard in
    // both runs, alone among ordinary channels in the first and with all its neighbours
    // hard in the second (the pass saved): its outputs must be the same bits (a channel's
    // route depends on its own data only), match the exact kernel, and not depend on the
    // thread count. float64 channel 4 of the first run looks hard in its first rows only
    // (offset 1e9, then ordinary): centred on the preview's mean, its later tiles are out
    // of Sterbenz's range and poison the centred sums, so it is summed error-free.
    constexpr std::int64_t rows = 420000, C = 5; // float64 forward: 5 blocks, backward 9
    const Layout l = collapse(Shape{rows, C}, 1);
    std::mt19937_64 rng(41);
    std::normal_distribution<double> normal;
    SUBCASE("float64, data far from 0 against its spread") {
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
            std::vector<double> y(xs.size()), dx(xs.size()), m(C), s(C), dg(C), db(C);
            forward<double>(xs.data(), nullptr, nullptr, l, 1e-5, y.data(), m.data(), s.data(), threads);
            backward<double>(xs.data(), nullptr, dy.data(), l, 1e-5, dx.data(), dg.data(), db.data(), threads);
            std::vector<double> y0(xs.size()), dx0(xs.size()), m0(C), s0(C), dg0(C), db0(C);
            detail::forward_exact<double>(xs.data(), l, nullptr, nullptr, 1e-5, y0.data(), m0.data(), s0.data());
            detail::backward_exact<double>(xs.data(), nullptr, dy.data(), l, 1e-5, dx0.data(), dg0.data(), db0.data());
            CAPTURE(c);
            CHECK(test::eps_error<double>(channel_values(y, l, c), channel_values(y0, l, c)) <= 2);
            CHECK(test::eps_error<double>(channel_values(dx, l, c), channel_values(dx0, l, c)) <= 2);
            const std::vector<double> stats{m[c], s[c], dg[c], db[c]};
            CHECK(test::eps_error<double>(stats, std::vector<double>{m0[c], s0[c], dg0[c], db0[c]}) <= 2);
            std::vector<double> out = stats;
            for (double v : channel_values(y, l, c)) out.push_back(v);
            for (double v : channel_values(dx, l, c)) out.push_back(v);
            return out;
        };
        const std::vector<double> alone = outputs(mixed, 0, 1);
        CHECK(outputs(hard, 0, 1) == alone);
        CHECK(outputs(mixed, 0, 3) == alone);
        outputs(mixed, 4, 2);
    }
    SUBCASE("float32, dy nearly linear in x") {
        // dy = 0.5 + 2x + 5e-7·noise, eps = 0: dx is ~1e-7 of its terms, and the plain sums
        // fail (backward only: float32 forward needs 16 MB for four blocks)
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
            std::vector<float> dx(x.size()), dg(C), db(C), dx0(x.size()), dg0(C), db0(C);
            backward<float>(x.data(), nullptr, g.data(), l, 0, dx.data(), dg.data(), db.data(), threads);
            detail::backward_exact<float>(x.data(), nullptr, g.data(), l, 0, dx0.data(), dg0.data(), db0.data());
            const std::vector<double> got = channel_values(dx, l, 0);
            CHECK(test::eps_error<float>(std::vector<float>(got.begin(), got.end()), channel_values(dx0, l, 0)) <= 2);
            CHECK(test::eps_error<float>(std::vector<float>{dg[0], db[0]}, std::vector<double>{dg0[0], db0[0]}) <= 2);
            std::vector<double> out{dg[0], db[0]};
            for (double v : got) out.push_back(v);
            return out;
        };
        const std::vector<double> alone = outputs(mixed, 1);
        CHECK(outputs(hard, 1) == alone);
        CHECK(outputs(mixed, 2) == alone);
    }
}
