// The exact tier of the backward pass (lib/src/exact_set.hpp) and its arithmetic
// (lib/src/stats/expansion.hpp) on their own: sums and products against integer
// arithmetic and cancellations whose answer is known, dx against closed forms.
#include "../lib/src/exact_set.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

using namespace bnorm;
using detail::dd;
namespace ex = detail::expansion;

namespace {

__extension__ typedef __int128 i128; // GCC's and Clang's 128-bit integers, for exact answers

/// The exact value of an expansion whose components are integers below 2^126.
i128 integer_value(const ex::Expansion& e) {
    i128 v = 0;
    for (double c : e) v += static_cast<i128>(c);
    return v;
}

} // namespace

TEST_CASE("LongSum: cancellations over the whole double range leave exactly what remains") {
    detail::LongSum s;
    for (double v : {0x1p1000, 1.0, -0x1p1000, 0x1p-1074, -1.0, 0x1.fffffffffffffp1023, -0x1.fffffffffffffp1023})
        s.add(v);
    CHECK(s.expansion() == ex::Expansion{0x1p-1074});

    detail::LongSum neg; // a negative total: balanced digits, no borrow through every chunk
    neg.add(-0x1p-1074);
    CHECK(neg.expansion() == ex::Expansion{-0x1p-1074});

    // random values of every magnitude, and their negations in another order: only w stays
    std::mt19937_64 rng(5);
    std::vector<double> v;
    for (int i = 0; i < 2000; ++i) {
        const double m = std::uniform_real_distribution<double>(1, 2)(rng);
        v.push_back((i % 2 ? -1 : 1) * std::ldexp(m, int(rng() % 2000) - 1000));
    }
    std::vector<double> back(v.rbegin(), v.rend());
    std::shuffle(back.begin(), back.end(), rng);
    detail::LongSum t;
    for (double a : v) t.add(a);
    t.add(0.1);
    for (double a : back) t.add(-a);
    const dd r = ex::to_dd(ex::compressed(t.expansion()));
    CHECK(r.hi == 0.1);
    CHECK(r.lo == 0);
}

TEST_CASE("expansions: sums and products of integers equal 128-bit integer arithmetic") {
    std::mt19937_64 rng(11);
    for (int trial = 0; trial < 200; ++trial) {
        detail::LongSum a, b;
        i128 ia = 0, ib = 0;
        for (int i = 0; i < 50; ++i) {
            const auto x = std::int64_t(rng() >> 24) - (std::int64_t(1) << 39); // |x| < 2^40
            const auto y = std::int64_t(rng() >> 30) - (std::int64_t(1) << 33);
            a.add(double(x)), b.add(double(y)), ia += x, ib += y;
        }
        const ex::Expansion ea = a.expansion(), eb = b.expansion();
        REQUIRE(integer_value(ea) == ia);
        const ex::Expansion p = ex::product(ea, eb), q = ex::sum(ex::scaled(ea, 3.0), ex::negated(p));
        CHECK(integer_value(p) == ia * ib);
        CHECK(integer_value(q) == 3 * ia - ia * ib);
        const dd r = ex::to_dd(ex::compressed(p)); // within 2^126: exact in double-double
        CHECK(static_cast<i128>(r.hi) + static_cast<i128>(r.lo) == ia * ib);
    }
    // (2^60 + 1)(2^60 − 1) = 2^120 − 1, two components
    const ex::Expansion p = ex::product({1.0, 0x1p60}, {-1.0, 0x1p60});
    CHECK(ex::fits_dd(p));
    CHECK(ex::to_dd(p).hi == 0x1p120);
    CHECK(ex::to_dd(p).lo == -1.0);
}

TEST_CASE("ExactSet: dx is exactly 0 where it cancels exactly") {
    std::mt19937_64 rng(3);
    std::normal_distribution<double> normal;
    for (const std::size_t m : {2u, 3u, 17u, 1000u}) {
        std::vector<double> x(m), g(m, 0.3), lo(m, 0x1p-60), twice(m);
        for (std::size_t i = 0; i < m; ++i) x[i] = 1e6 + normal(rng), twice[i] = 2 * x[i];
        // a constant dx̂ (with a low part): the mean of dx̂ takes it all
        detail::ExactSet c(x.data(), g.data(), lo.data(), m, 1e-5, true);
        REQUIRE(c.usable());
        // dx̂ = 2x, RMS with eps = 0: the projection on x takes it all
        const detail::ExactSet r(x.data(), twice.data(), nullptr, m, 0, false);
        REQUIRE(r.usable());
        for (std::size_t i = 0; i < m; ++i) {
            CHECK(c.dx(i).hi == 0);
            CHECK(r.dx(i).hi == 0);
        }
        CHECK(c.share(x.data(), g.data(), m).hi == 0); // dγ = invstd·Σ dy·(x − μ) = 0
    }
}

TEST_CASE("ExactSet: two values with eps far below the variance, against the closed form") {
    // x = (1, −1), dx̂ = (3, 1): var = 1, dx_1 = (g_1 − g_2)/2·eps/(1 + eps)^(3/2) = −dx_2,
    // which is eps·(1 − 1.5·eps) and rounds to eps; double-double sums lose it entirely
    // (it is 1e-30 of the terms)
    for (const double eps : {1e-30, 1e-100, 0x1p-200}) {
        const double x[2] = {1, -1}, g[2] = {3, 1};
        const detail::ExactSet s(x, g, nullptr, 2, eps, true);
        REQUIRE(s.usable());
        CHECK(detail::to<double>(s.dx(0)) == eps);
        CHECK(detail::to<double>(s.dx(1)) == -eps);
    }
    // x scaled by 2^400 (eps by 2^800) and dx̂ by 2^-400: dx by 2^-800, whatever the scale
    const double x[2] = {0x1p400, -0x1p400}, g[2] = {3 * 0x1p-400, 0x1p-400};
    const detail::ExactSet s(x, g, nullptr, 2, std::ldexp(1e-30, 800), true);
    REQUIRE(s.usable());
    CHECK(detail::to<double>(s.dx(0)) == std::ldexp(1e-30, -800));
}

TEST_CASE("ExactSet: ordinary data against a naive long double evaluation") {
    std::mt19937_64 rng(9);
    std::normal_distribution<double> normal;
    for (const bool centred : {true, false}) {
        const std::size_t m = 64;
        std::vector<double> x(m), g(m);
        for (std::size_t i = 0; i < m; ++i) x[i] = normal(rng), g[i] = normal(rng);
        const double eps = 1e-5;
        const detail::ExactSet s(x.data(), g.data(), nullptr, m, eps, centred);
        REQUIRE(s.usable());
        long double mean = 0, ms = 0, mg = 0, mgd = 0;
        for (std::size_t i = 0; i < m; ++i) mean += centred ? x[i] : 0.0L;
        mean /= m;
        for (std::size_t i = 0; i < m; ++i) {
            const long double d = x[i] - mean;
            ms += d * d, mg += centred ? g[i] : 0.0L, mgd += g[i] * d;
        }
        ms /= m, mg /= m, mgd /= m;
        const long double inv = 1 / std::sqrt(ms + eps);
        for (std::size_t i = 0; i < m; ++i) {
            const long double d = x[i] - mean, want = inv * (g[i] - mg - d * inv * inv * mgd);
            CHECK(std::abs(double(detail::to<double>(s.dx(i)) - want)) <= 1e-15 * std::abs(double(want)) + 1e-17);
        }
    }
}
