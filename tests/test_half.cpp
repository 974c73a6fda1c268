// bnorm/half.hpp: double → float16/bfloat16 rounded once, against a naive reference that
// searches the sorted list of every finite value of the type for the nearest (ties: the
// even bit pattern), written only for this test; decoding against the formats' definitions.
#include "bnorm/half.hpp"

#include "bnorm/csv.hpp"
#include "bnorm/error.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Decode = double (*)(std::uint16_t);

/// The bit patterns of every finite non-negative value, in increasing order of value.
std::vector<std::uint16_t> finite_non_negative(Decode decode) {
    std::vector<std::uint16_t> v;
    for (std::uint32_t b = 0; b < 0x8000; ++b)
        if (std::isfinite(decode(std::uint16_t(b)))) v.push_back(std::uint16_t(b));
    std::sort(v.begin(), v.end(), [&](auto a, auto b) { return decode(a) < decode(b); });
    return v;
}

/// The nearest value to v by search, ties to the even pattern; beyond the largest finite
/// value by half its spacing or more: infinity (the IEEE rule for overflow).
std::uint16_t naive_round(double v, Decode decode, const std::vector<std::uint16_t>& values, std::uint16_t inf) {
    const std::uint16_t sign = std::signbit(v) ? 0x8000 : 0;
    const double a = std::fabs(v);
    const double top = decode(values.back()), spacing = top - decode(values[values.size() - 2]);
    if (a >= top + spacing / 2) return sign | inf;
    auto it = std::lower_bound(values.begin(), values.end(), a, [&](auto b, double x) { return decode(b) < x; });
    if (it == values.end()) return sign | values.back();
    if (it == values.begin() || decode(*it) == a) return sign | *it;
    const std::uint16_t hi = *it, lo = *(it - 1);
    const double dhi = decode(hi) - a, dlo = a - decode(lo);
    if (dlo < dhi) return sign | lo;
    if (dhi < dlo) return sign | hi;
    return sign | ((lo & 1) == 0 ? lo : hi);
}

void check_type(Decode decode, std::uint16_t (*encode)(double), std::uint16_t inf, int frac) {
    const std::vector<std::uint16_t> values = finite_non_negative(decode);
    // every finite value, every midpoint between neighbours, and each ± a hair (2^-30 relative)
    for (std::size_t i = 0; i + 1 < values.size(); ++i) {
        const double lo = decode(values[i]), hi = decode(values[i + 1]);
        const double mid = (lo + hi) / 2; // exact: few bits
        for (double v : {lo, mid, mid * (1 + 0x1p-30), mid * (1 - 0x1p-30), -mid, -lo}) {
            const std::uint16_t want = naive_round(v, decode, values, inf);
            if (encode(v) != want) {
                FAIL_CHECK("v=" << v << " got " << encode(v) << " want " << want);
                return;
            }
        }
        // the midpoint itself goes to the even pattern: never the odd one
        CHECK((encode(mid) & 1) == 0);
    }
    // random doubles over the whole range, subnormals and overflow included
    std::mt19937_64 rng(26);
    std::uniform_real_distribution<double> m(0.5, 1.0);
    std::uniform_int_distribution<int> e(-160, 140);
    for (int i = 0; i < 200000; ++i) {
        const double v = std::ldexp(m(rng), e(rng)) * (i % 2 ? -1 : 1);
        const std::uint16_t want = naive_round(v, decode, values, inf);
        if (encode(v) != want) {
            FAIL_CHECK("v=" << v << " got " << encode(v) << " want " << want);
            return;
        }
    }
    CHECK(encode(INFINITY) == inf);
    CHECK(encode(-INFINITY) == (0x8000 | inf));
    CHECK(std::isnan(decode(encode(NAN))));
    CHECK(encode(-0.0) == 0x8000);
    CHECK(encode(0x1p-1074) == 0); // far below the least subnormal
    (void)frac;
}

} // namespace

TEST_CASE("from_float16: the binary16 definition") {
    CHECK(bnorm::from_float16(0x3c00) == 1.0);
    CHECK(bnorm::from_float16(0x7bff) == 65504.0);
    CHECK(bnorm::from_float16(0x0001) == 0x1p-24);
    CHECK(bnorm::from_float16(0x0400) == 0x1p-14);
    CHECK(bnorm::from_float16(0xc000) == -2.0);
    CHECK(std::isinf(bnorm::from_float16(0x7c00)));
    CHECK(std::isnan(bnorm::from_float16(0x7e00)));
}

TEST_CASE("from_bfloat16: the top half of a float32") {
    CHECK(bnorm::from_bfloat16(0x3f80) == 1.0);
    CHECK(bnorm::from_bfloat16(0x4049) == 3.140625);
    CHECK(bnorm::from_bfloat16(0x0001) == 0x1p-133);
    CHECK(bnorm::from_bfloat16(0x7f7f) == 0x1.fep127);
    CHECK(std::isinf(bnorm::from_bfloat16(0xff80)));
}

TEST_CASE("to_float16: nearest, ties to even, subnormals, overflow, against a search") {
    check_type(bnorm::from_float16, bnorm::to_float16, 0x7c00, 10);
    CHECK(bnorm::to_float16(65519.99) == 0x7bff);
    CHECK(bnorm::to_float16(65520.0) == 0x7c00); // the half-way point above 65504 ties to "even" infinity
}

TEST_CASE("to_bfloat16: nearest, ties to even, subnormals, overflow, against a search") {
    check_type(bnorm::from_bfloat16, bnorm::to_bfloat16, 0x7f80, 7);
}

TEST_CASE("rounded once: through float32 would give the other neighbour") {
    // 1 + 2^-11 is float16's half-way point between 1 and 1 + 2^-10; just above it by
    // 2^-40, float32 rounds to the midpoint itself, which then ties down to 1.
    const double v = 1 + 0x1p-11 + 0x1p-40;
    CHECK(bnorm::to_float16(v) == 0x3c01);
    CHECK(bnorm::to_float16(double(float(v))) == 0x3c00); // the double rounding avoided
    const double w = 1 + 0x1p-8 + 0x1p-40; // bfloat16's half-way point after 1
    CHECK(bnorm::to_bfloat16(w) == 0x3f81);
    CHECK(bnorm::to_bfloat16(double(float(w))) == 0x3f80);
}

TEST_CASE("round_array and widen_to_f64: element by element, exact back") {
    bnorm::Array a(bnorm::DType::f64, {3});
    a.data<double>()[0] = 1 + 0x1p-11 + 0x1p-40, a.data<double>()[1] = -70000, a.data<double>()[2] = 0x1p-25 * 3;
    const bnorm::Array h = bnorm::round_array(a, bnorm::DType::f16);
    const bnorm::Array back = bnorm::widen_to_f64(h);
    CHECK(back.data<double>()[0] == 1 + 0x1p-10);
    CHECK(std::isinf(back.data<double>()[1]));
    CHECK(back.data<double>()[2] == 0x1p-23); // 1.5 subnormal spacings tie to 2
}

TEST_CASE("CSV --dtype float16/bfloat16: the text, not its double, decides at a half-way point") {
    // 1.00048828125 = 1 + 2^-11 is float16's half-way point after 1; the texts 1e-17 above
    // and below read as that very double, yet lie on either side of it.
    const bnorm::Array h = bnorm::parse_csv("1.00048828125000001,1.00048828124999999,1.00048828125,65519.9\n",
                                            bnorm::DType::f16, "t.csv", 1);
    const auto* b = reinterpret_cast<const std::uint16_t*>(h.bytes());
    CHECK(b[0] == 0x3c01);
    CHECK(b[1] == 0x3c00);
    CHECK(b[2] == 0x3c00); // the half-way point itself: ties to even
    CHECK(b[3] == 0x7bff);
    // bfloat16: 1.00390625 = 1 + 2^-8
    const bnorm::Array g = bnorm::parse_csv("1.00390625000000001,1.00390625\n", bnorm::DType::bf16, "t.csv", 1);
    const auto* c = reinterpret_cast<const std::uint16_t*>(g.bytes());
    CHECK(c[0] == 0x3f81);
    CHECK(c[1] == 0x3f80);
    CHECK_THROWS_WITH_AS(bnorm::parse_csv("70000\n", bnorm::DType::f16, "t.csv", 1),
                         doctest::Contains("overflows float16"), bnorm::InputError);
}

TEST_CASE("CSV of half values: the fewest digits that read back") {
    bnorm::Array a(bnorm::DType::f64, {1, 3});
    a.data<double>()[0] = 0.1, a.data<double>()[1] = 65504, a.data<double>()[2] = 0x1p-24;
    std::string text;
    bnorm::format_csv(bnorm::round_array(a, bnorm::DType::f16), [&](std::string_view s) { text += s; }, 1);
    CHECK(text == "0.1,6.55e+04,6e-08\n");
}
