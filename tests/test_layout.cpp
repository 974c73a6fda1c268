#include "bnorm/error.hpp"
#include "bnorm/layout.hpp"

#include <doctest/doctest.h>

using namespace bnorm;

TEST_CASE("collapse: every layout becomes (outer, C, inner)") {
    struct Case {
        Shape shape;
        int axis;
        std::int64_t outer, c, inner;
    };
    const Case cases[] = {
        {{8, 3}, 1, 8, 3, 1},           // (N, C)
        {{8, 3}, -1, 8, 3, 1},
        {{8, 3}, 0, 1, 8, 3},           // channels first
        {{8, 3, 10}, 1, 8, 3, 10},      // (N, C, L)
        {{2, 3, 5, 7}, 1, 2, 3, 35},    // NCHW
        {{2, 5, 7, 3}, -1, 70, 3, 1},   // NHWC
        {{2, 5, 7, 3}, 3, 70, 3, 1},
        {{2, 3, 5, 7}, -3, 2, 3, 35},
    };
    for (const Case& k : cases) {
        CAPTURE(shape_to_string(k.shape));
        CAPTURE(k.axis);
        const Layout l = collapse(k.shape, k.axis);
        CHECK(l.outer == k.outer);
        CHECK(l.channels == k.c);
        CHECK(l.inner == k.inner);
        CHECK(l.per_channel() == k.outer * k.inner);
    }
}

TEST_CASE("collapse and check_problem refuse what batch norm cannot do") {
    CHECK_THROWS_WITH_AS(collapse(Shape{8, 3}, 2), "--axis 2 is out of range for a tensor of rank 2 (valid: -2 to 1)",
                         UsageError);
    CHECK_THROWS_AS(collapse(Shape{8, 3}, -3), UsageError);
    CHECK_THROWS_AS(collapse(Shape{8}, 0), UsageError);
    CHECK_THROWS_WITH_AS(check_problem(Shape{1, 3}, 1, "x.npy"),
                         "x.npy: shape (1, 3) with channel axis 1 has m = 1 value per channel; batch "
                         "norm needs at least 2 (a batch of one is undefined)",
                         InputError);
    CHECK_THROWS_AS(check_problem(Shape{0, 3}, 1, "x.npy"), InputError);
    CHECK_THROWS_AS(check_problem(Shape{4, 0}, 1, "x.npy"), InputError);
    CHECK_THROWS_AS(check_problem(Shape{5}, 0, "x.npy"), InputError);
    CHECK(check_problem(Shape{2, 1, 1, 1}, 1, "x.npy").per_channel() == 2);
}

TEST_CASE("shape_to_string prints shapes as numpy does") {
    CHECK(shape_to_string(Shape{}) == "()");
    CHECK(shape_to_string(Shape{3}) == "(3,)");
    CHECK(shape_to_string(Shape{2, 3, 4}) == "(2, 3, 4)");
}

TEST_CASE("element_count detects overflow") {
    CHECK(element_count(Shape{2, 3, 4}) == 24);
    CHECK(element_count(Shape{}) == 1);
    CHECK(element_count(Shape{1LL << 32, 1LL << 32}) == -1);
    CHECK(element_count(Shape{3, -1}) == -1);
}
