// The library's outputs against independent references: a naive long-double implementation
// (naive_batchnorm.hpp) on random shapes, axes and eps, in both layouts; inputs with exactly
// known answers; central finite differences of f = Σ dy ⊙ y; and the exact kernel on large,
// ill-conditioned tensors, on one thread or several. The exact mpmath reference is
// test_golden.cpp; the routes that hard channels take are test_routes.cpp.
#include "naive_batchnorm.hpp"
#include "run_helpers.hpp"

#include "bnorm/batchnorm.hpp"

#include <limits>
#include <random>

using namespace bnorm;
using namespace bnorm::test;

namespace {

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

        // The naive result is good to ~1e-19 here: the library must be within its promise
        // (4 eps), and is in fact within about 1 eps (0.5 for the final rounding).
        check_outputs(run_library(x, gamma, beta, dy, l, eps),
                      naive_batchnorm(widen(x), shape, axis, widen(gamma), widen(beta), widen(dy), eps));

        // The same data laid out channels-last goes through the other tiling of the same
        // kernel (another (outer, C, inner)) and must be as accurate.
        Shape last_shape;
        const std::vector<T> x_last = channels_last(x, shape, axis, last_shape);
        const std::vector<T> dy_last = channels_last(dy, shape, axis, last_shape);
        check_outputs(run_library(x_last, gamma, beta, dy_last, collapse(last_shape, -1), eps),
                      naive_batchnorm(widen(x_last), last_shape, int(last_shape.size()) - 1, widen(gamma),
                                      widen(beta), widen(dy_last), eps));
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
        const Layout l = collapse(Shape{4, 2}, 1); // (N, C), channel 1 uses offset 2a
        const std::vector<double> x{a - 1, 2 * a - 1, a - 1, 2 * a - 1, a + 1, 2 * a + 1, a + 1, 2 * a + 1};
        const std::vector<double> gamma{3, -0.5}, beta{0.25, 7};
        const std::vector<double> dy{1, 0, 0, 2, 0, 0, 0, 0};
        const Outputs<double> r = run_library(x, gamma, beta, dy, l, 0.0);
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
    const Outputs<double> r = run_library_backward(x, gamma, dy, l, eps);
    std::vector<double> num_dx(x.size()), num_dg(2), num_db(2);
    for (std::size_t i = 0; i < x.size(); ++i) num_dx[i] = central(x, i, [&] { return f(x, gamma, beta); });
    for (std::size_t c = 0; c < 2; ++c) {
        num_dg[c] = central(gamma, c, [&] { return f(x, gamma, beta); });
        num_db[c] = central(beta, c, [&] { return f(x, gamma, beta); });
    }
    // Central differences are good to ~1e-9 here; a wrong term is off by O(1).
    CHECK(test::eps_error<double>(r.dx, num_dx) * std::numeric_limits<double>::epsilon() < 1e-7);
    CHECK(test::eps_error<double>(r.dgamma, num_dg) * std::numeric_limits<double>::epsilon() < 1e-7);
    CHECK(test::eps_error<double>(r.dbeta, num_db) * std::numeric_limits<double>::epsilon() < 1e-7);
}

// ---- the fast kernel on tensors large enough for many tiles, blocks and threads ----------

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

/// The library on one, two and three threads: within 2 eps of the exact kernel (which the
/// golden tests show correctly rounded on every class of difficulty), the same bits on any
/// thread count.
template <class T> void large_problem(const Shape& shape, int axis, int kind, double eps) {
    const Layout l = collapse(shape, axis);
    CAPTURE(repro(shape, axis, eps, dtype_of<T>()));
    CAPTURE(kind);
    std::vector<T> x(l.size()), dy(l.size()), gamma(l.channels), beta(l.channels);
    fill_hard(x, dy, 100 + kind, kind);
    for (std::int64_t c = 0; c < l.channels; ++c) gamma[c] = T(1 + 0.1 * c), beta[c] = T(0.5 - 0.01 * c);

    const Outputs<T> exact = run_exact(x, gamma, beta, dy, l, eps);
    const Outputs<T> one_thread = run_library(x, gamma, beta, dy, l, eps, 1);
    check_outputs(one_thread, exact);
    for (int threads : {2, 3}) {
        CAPTURE(threads);
        check_same_bits(run_library(x, gamma, beta, dy, l, eps, threads), one_thread);
    }
}

} // namespace

TEST_CASE("large tensors: the fast kernel is as accurate as the exact one, and thread-count independent") {
    SUBCASE("float64") {
        for (int kind : {0, 2, 3}) {
            large_problem<double>({4096, 24}, 1, kind, 1e-8);        // (N, C): whole-row tiles
            large_problem<double>({8, 6, 96, 96}, 1, kind, 1e-5);    // NCHW: segments of long rows
            large_problem<double>({16, 20, 20, 12}, -1, kind, 1e-3); // NHWC
            large_problem<double>({40000, 12}, 1, kind, 1e-5);       // two blocks (backward), merged
            // rows 2 and 4 KiB apart, whose lines crowd L1's sets: pass A copies them (prefetch.hpp)
            large_problem<double>({160, 256}, 1, kind, 1e-5);
            large_problem<double>({72, 512}, 1, kind, 1e-5);
        }
    }
    SUBCASE("float32") {
        for (int kind : {1, 2, 3}) {
            large_problem<float>({4096, 24}, 1, kind, 1e-5);
            large_problem<float>({3001, 23}, 1, kind, 1e-5); // channel chunks of 16, 8, 4 and 1; a part tile
            large_problem<float>({8, 6, 96, 96}, 1, kind, 1e-5);
            large_problem<float>({16, 20, 20, 12}, -1, kind, 1e-8);
        }
    }
}
