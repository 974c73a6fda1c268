// bnorm/judge.hpp: the verdict and the scales on hand-made inputs whose answers are known
// by construction (powers of two, small integers), never from bnorm's own outputs.
#include "bnorm/judge.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

using bnorm::DType;
using bnorm::JudgeCriterion;

TEST_CASE("ulp_in: the spacing of the dtype's numbers at the value") {
    CHECK(bnorm::ulp_in(DType::f32, 1.0) == 0x1p-23);
    CHECK(bnorm::ulp_in(DType::f32, -1.75) == 0x1p-23);
    CHECK(bnorm::ulp_in(DType::f32, 4.0) == 0x1p-21);
    CHECK(bnorm::ulp_in(DType::f32, 0x1p-130) == 0x1p-149); // subnormal
    CHECK(bnorm::ulp_in(DType::f32, 0.0) == 0x1p-149);
    CHECK(bnorm::ulp_in(DType::f64, 1.0) == 0x1p-52);
    CHECK(bnorm::ulp_in(DType::f64, 0x1p-1060) == 0x1p-1074);
    CHECK(bnorm::ulp_in(DType::f32, 1e300) == 0x1p104); // beyond float32's range: the spacing at its largest
    CHECK(bnorm::dtype_eps(DType::f32) == 0x1p-23);
    CHECK(bnorm::dtype_eps(DType::f64) == 0x1p-52);
}

TEST_CASE("ulp_in and dtype_eps of float16 and bfloat16") {
    CHECK(bnorm::dtype_eps(DType::f16) == 0x1p-10);
    CHECK(bnorm::dtype_eps(DType::bf16) == 0x1p-7);
    CHECK(bnorm::ulp_in(DType::f16, 1.0) == 0x1p-10);
    CHECK(bnorm::ulp_in(DType::f16, 65504.0) == 32.0);
    CHECK(bnorm::ulp_in(DType::f16, 1e6) == 32.0);      // beyond the range: the spacing at the largest
    CHECK(bnorm::ulp_in(DType::f16, 0x1p-20) == 0x1p-24); // subnormal
    CHECK(bnorm::ulp_in(DType::bf16, 1.0) == 0x1p-7);
    CHECK(bnorm::ulp_in(DType::bf16, 0x1p-130) == 0x1p-133);
    // a float16 candidate one float16 ulp off at 1 is 1 ulp off, 2^13 float32 ulps
    const std::vector<double> exact = {1.0}, got = {1.0 + 0x1p-10};
    const std::vector<std::int64_t> shape = {1};
    JudgeCriterion c;
    c.kind = JudgeCriterion::Kind::normwise, c.tol_eps = 1;
    const bnorm::JudgeVerdict v = bnorm::judge(exact, got, {}, shape, DType::f16, c);
    CHECK(v.max_ulp == 1.0);
    CHECK(v.normwise_eps == 1.0);
    CHECK(v.passed);
}

namespace {
// exact {1, 2, 0, -4}; got: equal, 1 float32 ulp off at 2, equal, 3 ulps off at -4
const std::vector<double> kExact = {1.0, 2.0, 0.0, -4.0};
const std::vector<double> kGot = {1.0, 2.0 + 0x1p-22, 0.0, -4.0 - 3 * 0x1p-21};
const std::vector<double> kScale = {1.0, 2.0, 1.0, 4.0};
const std::vector<std::int64_t> kShape = {2, 2};
} // namespace

TEST_CASE("judge: the statistics of the report") {
    const bnorm::JudgeVerdict v = bnorm::judge(kExact, kGot, kScale, kShape, DType::f32, JudgeCriterion{});
    CHECK(v.count == 4);
    CHECK(v.max_abs_err == 3 * 0x1p-21);
    CHECK(v.max_ulp == 3);
    CHECK(v.normwise_eps == 3);                    // 3·2^-21 / 4 / 2^-23
    CHECK(v.ulp_histogram[0] == 2);                // the two equal elements
    CHECK(v.ulp_histogram[1] == 1);
    CHECK(v.ulp_histogram[2] == 1);                // 3 ulps: the 2-4 bin
    CHECK(v.ulp_histogram[3] + v.ulp_histogram[4] + v.ulp_histogram[5] == 0);
    CHECK(v.passed);                               // 3 ulps at 4 = 12 eps ≤ 64·eps·4
}

TEST_CASE("judge: the scaled criterion, its worst element and multi-index") {
    JudgeCriterion c;
    c.k = 1; // allowed: eps·scale (+ a floor far below it)
    const bnorm::JudgeVerdict v = bnorm::judge(kExact, kGot, kScale, kShape, DType::f32, c);
    CHECK_FALSE(v.passed);
    CHECK(v.over == 1);                            // 12 eps against 4 eps; element 1 is at 2 eps of 2 eps
    CHECK(v.over_fraction == 0.25);
    CHECK(v.worst == 3);
    CHECK(v.worst_index == bnorm::Shape{1, 1});
    CHECK(v.worst_got == kGot[3]);
    CHECK(v.worst_exact == -4.0);
    CHECK(v.worst_ulp == 3);
    CHECK(v.max_ratio == doctest::Approx(3).epsilon(1e-9));
    c.k = 3.01; // 12 eps ≤ 3.01·eps·4
    CHECK(bnorm::judge(kExact, kGot, kScale, kShape, DType::f32, c).passed);
}

TEST_CASE("judge: --rtol/--atol (elementwise) and --tol-eps (normwise)") {
    JudgeCriterion c;
    c.kind = JudgeCriterion::Kind::elementwise;
    c.rtol = 1e-6; // 3·2^-21 ≈ 1.43e-6 ≤ 4e-6
    CHECK(bnorm::judge(kExact, kGot, {}, kShape, DType::f32, c).passed);
    c.rtol = 2e-7; // -4: 1.43e-6 > 8e-7; 2: 2.4e-7 ≤ 4e-7
    bnorm::JudgeVerdict v = bnorm::judge(kExact, kGot, {}, kShape, DType::f32, c);
    CHECK(v.over == 1);
    CHECK(v.worst == 3);
    c.atol = 1e-6; // -4: 1.43e-6 ≤ 1e-6 + 8e-7
    CHECK(bnorm::judge(kExact, kGot, {}, kShape, DType::f32, c).passed);

    c = JudgeCriterion{};
    c.kind = JudgeCriterion::Kind::normwise;
    c.tol_eps = 3; // max err 3·2^-21 = 3·eps·max|exact|: at the limit
    CHECK(bnorm::judge(kExact, kGot, {}, kShape, DType::f32, c).passed);
    c.tol_eps = 2.99;
    v = bnorm::judge(kExact, kGot, {}, kShape, DType::f32, c);
    CHECK_FALSE(v.passed);
    CHECK(v.over == 1);
    // in float64 the same error is 2^29 times more eps
    c.tol_eps = 3 * 0x1p29;
    CHECK(bnorm::judge(kExact, kGot, {}, kShape, DType::f64, c).passed);
}

TEST_CASE("judge: non-finite values and zeros") {
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = HUGE_VAL;
    const std::vector<std::int64_t> shape = {3};
    const std::vector<double> one = {1.0, 1.0, 1.0};
    // NaN against NaN and inf against inf are equal; NaN against a number fails
    CHECK(bnorm::judge(std::vector<double>{nan, inf, 1}, std::vector<double>{nan, inf, 1}, one, shape, DType::f64,
                       JudgeCriterion{})
              .passed);
    // with NaN scales too (--allow-nonfinite: a NaN in x makes its channel's scales NaN)
    CHECK(bnorm::judge(std::vector<double>{nan, 1, 1}, std::vector<double>{nan, 1, 1},
                       std::vector<double>{nan, nan, 1}, shape, DType::f64, JudgeCriterion{})
              .passed);
    CHECK_FALSE(bnorm::judge(std::vector<double>{nan, 1, 1}, std::vector<double>{nan, 1.5, 1},
                             std::vector<double>{nan, nan, 1}, shape, DType::f64, JudgeCriterion{})
                    .passed);
    const bnorm::JudgeVerdict v = bnorm::judge(std::vector<double>{1, 1, 1}, std::vector<double>{1, nan, -inf}, one,
                                               shape, DType::f64, JudgeCriterion{});
    CHECK(v.over == 2);
    CHECK(v.worst == 1);
    CHECK(std::isinf(v.max_ratio));
    // an exact zero with a zero scale: a float32 subnormal step is within the floor, 1e-30 is not
    const std::vector<double> zeros = {0.0, 0.0, 0.0};
    CHECK(bnorm::judge(zeros, std::vector<double>{0, 0x1p-149, 0}, zeros, shape, DType::f32, JudgeCriterion{}).passed);
    CHECK_FALSE(bnorm::judge(zeros, std::vector<double>{0, 1e-30, 0}, zeros, shape, DType::f32, JudgeCriterion{}).passed);
}

TEST_CASE("scales of batch norm on one channel x = 1, 2, 3, 6 (mean 3, var 3.5)") {
    const std::vector<std::int64_t> shape = {4, 1};
    const bnorm::NormProblem p = bnorm::check_norm_problem(shape, bnorm::Norm::batch, 1, 0, "x");
    const std::vector<double> x = {1, 2, 3, 6}, dy = {1, 0, 0, -1};
    const double gamma = -2, beta = -1, mean = 3, eps = 0.5, invstd = 1 / std::sqrt(3.5 + eps), s = std::sqrt(3.5);
    std::vector<double> sy(4), sdx(4);
    bnorm::scale_y(x.data(), &gamma, &beta, &mean, &invstd, p, eps, sy.data());
    // |γ|·(|x − mean| + σ)·invstd + |β|
    CHECK(sy[2] == doctest::Approx(2 * s * invstd + 1));
    CHECK(sy[3] == doctest::Approx(2 * (3 + s) * invstd + 1));
    bnorm::scale_dx(x.data(), &gamma, dy.data(), &mean, &invstd, p, sdx.data());
    // invstd·(|γ dy| + mean|γ dy| + |x̂|·mean|γ dy x̂|): mean|γ dy| = 1, mean|γ dy x̂| = 2·(2 + 3)·invstd/4
    const double m_dxh_xh = 2 * 5 * invstd / 4;
    CHECK(sdx[0] == doctest::Approx(invstd * (2 + 1 + 2 * invstd * m_dxh_xh)));
    CHECK(sdx[2] == doctest::Approx(invstd * (0 + 1 + 0)));
    bnorm::scale_dx_eval(&gamma, dy.data(), &invstd, p, sdx.data()); // invstd·|γ·dy|
    CHECK(sdx == std::vector<double>{2 * invstd, 0, 0, 2 * invstd});
    double sg = 0, sb = 0;
    bnorm::scale_dgamma_dbeta(x.data(), dy.data(), &mean, &invstd, p, eps, &sg, &sb);
    // Σ|dy|·(|x̂| + σ·invstd): |x̂| of x = 1 and 6 is 2·invstd and 3·invstd
    CHECK(sg == doctest::Approx((5 + 2 * s) * invstd));
    CHECK(sb == 2);
    double sm = 0;
    bnorm::scale_mean(x.data(), p, &sm);
    CHECK(sm == 3);
    const double old_mean = -2, old_var = 1;
    double nm = 0, nv = 0;
    bnorm::scale_running(x.data(), &old_mean, &old_var, &invstd, 0.25, 1, eps, p, &nm, &nv);
    CHECK(nm == doctest::Approx(0.75 * 2 + 0.25 * 3));
    CHECK(nv == doctest::Approx(0.75 * 1 + 0.25 * 3.5 * 4 / 3));
}

TEST_CASE("scales: the sets and parameters of group, instance, layer and rms norm") {
    // x (2, 4, 1) = 1..8 (and -1..-8): the mean of |x| over each set
    const std::vector<std::int64_t> shape = {2, 4, 1};
    std::vector<double> x(8);
    for (int i = 0; i < 8; ++i) x[std::size_t(i)] = (i % 2 ? -1 : 1) * (i + 1);
    const auto means = [&](bnorm::Norm norm, int axis, std::int64_t groups) {
        const bnorm::NormProblem p = bnorm::check_norm_problem(shape, norm, axis, groups, "x", 1);
        std::vector<double> m(std::size_t(p.sets));
        bnorm::scale_mean(x.data(), p, m.data());
        return m;
    };
    CHECK(means(bnorm::Norm::group, 1, 2) == std::vector<double>{1.5, 3.5, 5.5, 7.5});
    CHECK(means(bnorm::Norm::instance, 1, 0) == std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8});
    CHECK(means(bnorm::Norm::batch, 1, 0) == std::vector<double>{3, 4, 5, 6});
    CHECK(means(bnorm::Norm::layer, 1, 0) == std::vector<double>{2.5, 6.5});
    // layer norm's dβ scale sums over the rows, per element of the row: Σ|dy| of column j
    const bnorm::NormProblem p = bnorm::check_norm_problem(shape, bnorm::Norm::layer, 1, 0, "x");
    const std::vector<double> mean = {0, 0}, invstd = {1, 1};
    std::vector<double> sb(4);
    bnorm::scale_dgamma_dbeta(x.data(), x.data(), mean.data(), invstd.data(), p, 0.0, nullptr, sb.data());
    CHECK(sb == std::vector<double>{6, 8, 10, 12});
    // rms: y's scale is |γ|·(|x| + rms)·invstd, with the rms from invstd = 1/sqrt(rms² + eps)
    const bnorm::NormProblem r = bnorm::check_norm_problem(shape, bnorm::Norm::rms, 1, 0, "x");
    const std::vector<double> rinv = {0.5, 0.25};
    std::vector<double> sy(8);
    bnorm::scale_y(x.data(), nullptr, nullptr, nullptr, rinv.data(), r, 0.0, sy.data());
    CHECK(sy[0] == doctest::Approx((1 + 2) * 0.5));
    CHECK(sy[5] == doctest::Approx((6 + 4) * 0.25));
}

TEST_CASE("scales: x of any magnitude (|x| beyond 1e154 or below 1e-154, where 1/invstd² overflows or underflows)") {
    // x = {1, 2, 3, 6}·2^±700: x̂ and σ·invstd are those of {1, 2, 3, 6} (eps negligible, or 0)
    const std::vector<std::int64_t> shape = {4, 1};
    const bnorm::NormProblem p = bnorm::check_norm_problem(shape, bnorm::Norm::batch, 1, 0, "x");
    const std::vector<double> dy = {1, 0, 0, -1};
    for (const int e : {700, -700}) {
        CAPTURE(e);
        std::vector<double> x = {1, 2, 3, 6};
        for (double& v : x) v = std::ldexp(v, e);
        const double gamma = -2, beta = -1, mean = std::ldexp(3.0, e), invstd = std::ldexp(1 / std::sqrt(3.5), -e);
        const double eps = e > 0 ? 1e-5 : 0.0;
        std::vector<double> sy(4);
        bnorm::scale_y(x.data(), &gamma, &beta, &mean, &invstd, p, eps, sy.data());
        CHECK(sy[2] == doctest::Approx(2 * 1 + 1)); // |γ|·(0 + σ·invstd) + |β|, σ·invstd = 1
        CHECK(sy[3] == doctest::Approx(2 * (3 / std::sqrt(3.5) + 1) + 1));
        double sg = 0, sb = 0;
        bnorm::scale_dgamma_dbeta(x.data(), dy.data(), &mean, &invstd, p, eps, &sg, &sb);
        CHECK(sg == doctest::Approx(5 / std::sqrt(3.5) + 2)); // Σ|dy|·(|x̂| + 1)
        CHECK(sb == 2);
    }
}
