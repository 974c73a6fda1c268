// The double-double arithmetic of lib/src/ddouble.hpp on its own: rounding hi + lo to
// float (ties included, one value or four and eight lanes at once) and 1/sqrt over the
// whole double range, against exact answers and long double.
#include "../lib/src/ddouble.hpp"

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

using namespace bnorm;

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
