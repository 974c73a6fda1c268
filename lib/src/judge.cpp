// bnorm/judge.hpp's verdict: the errors of a candidate against the exact values, in ulps
// and eps of the candidate's dtype, and the criterion that passes or fails each element.
#include "bnorm/judge.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace bnorm {

namespace {

/// (precision p, least normal exponent, largest exponent) of a dtype.
struct Format {
    int p, emin, emax;
};
Format format_of(DType t) {
    switch (t) {
    case DType::f32: return {24, -126, 127};
    case DType::f16: return {11, -14, 15};
    case DType::bf16: return {8, -126, 127};
    default: return {53, -1022, 1023};
    }
}

} // namespace

double dtype_eps(DType t) { return std::ldexp(1.0, 1 - format_of(t).p); }

double ulp_in(DType t, double value) {
    const auto [p, emin, emax] = format_of(t);
    const double a = std::fabs(value);
    if (!(a > 0) || std::isinf(a)) return std::ldexp(1.0, (a > 0 ? emax : emin) - (p - 1));
    int e = std::ilogb(a);
    e = std::clamp(e, emin, emax);
    return std::ldexp(1.0, e - (p - 1));
}

namespace {

/// |got − exact|, with equal non-finite values equal and any other non-finite pair infinitely apart.
double error_of(double got, double exact) {
    if (std::isnan(got) || std::isnan(exact)) return std::isnan(got) && std::isnan(exact) ? 0.0 : HUGE_VAL;
    if (std::isinf(got) || std::isinf(exact)) return got == exact ? 0.0 : HUGE_VAL;
    return std::fabs(got - exact);
}

/// The histogram's bin of an ulp error: its nearest integer n (ties up) in 0, 1, 2–4, 5–16, 17–256, > 256.
std::size_t ulp_bin(double ulps) {
    const double n = ulps <= 0.5 ? 0 : std::ceil(ulps - 0.5);
    if (n == 0) return 0;
    if (n == 1) return 1;
    if (n <= 4) return 2;
    if (n <= 16) return 3;
    if (n <= 256) return 4;
    return 5;
}

} // namespace

JudgeVerdict judge(std::span<const double> exact, std::span<const double> got, std::span<const double> scale,
                   std::span<const std::int64_t> shape, DType t, const JudgeCriterion& c) {
    JudgeVerdict v;
    const std::size_t n = exact.size();
    v.count = std::int64_t(n);
    const double eps = dtype_eps(t);
    const double k = t == DType::f16 || t == DType::bf16 ? c.half_k : c.k; // the scaled criterion's
    double max_exact = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (std::isfinite(exact[i])) max_exact = std::max(max_exact, std::fabs(exact[i]));
        v.max_abs_err = std::max(v.max_abs_err, error_of(got[i], exact[i]));
    }
    v.normwise_eps = v.max_abs_err == 0 ? 0 : max_exact > 0 ? v.max_abs_err / max_exact / eps : HUGE_VAL;

    // the allowance of element i, and the part of it common to every element
    double base = 0;
    switch (c.kind) {
    case JudgeCriterion::Kind::scaled: {
        double max_scale = 0;
        for (std::size_t i = 0; i < n; ++i)
            if (std::isfinite(scale[i])) max_scale = std::max(max_scale, scale[i]);
        base = std::max(k * eps * 0x1p-40 * max_scale, std::numeric_limits<double>::denorm_min());
        if (t != DType::f64) base = std::max(base, ulp_in(t, 0.0)); // the dtype's smallest subnormal
        break;
    }
    case JudgeCriterion::Kind::elementwise: base = c.atol; break;
    case JudgeCriterion::Kind::normwise: base = c.tol_eps * eps * max_exact; break;
    }
    v.floor = base;
    const auto allowed = [&](std::size_t i) {
        switch (c.kind) {
        case JudgeCriterion::Kind::scaled: return k * eps * scale[i] + base;
        case JudgeCriterion::Kind::elementwise: return c.atol + c.rtol * std::fabs(exact[i]);
        case JudgeCriterion::Kind::normwise: break;
        }
        return base;
    };

    for (std::size_t i = 0; i < n; ++i) {
        const double err = error_of(got[i], exact[i]);
        const double ulps = err == 0 ? 0 : err / ulp_in(t, exact[i]);
        v.max_ulp = std::max(v.max_ulp, ulps);
        ++v.ulp_histogram[ulp_bin(ulps)];
        const double a = allowed(i);
        const bool over = err > 0 && !(err <= a); // equal values pass whatever the scale (NaN with NaN data)
        v.over += over;
        const double ratio = err == 0 ? 0 : a > 0 ? err / a : HUGE_VAL;
        if (v.worst < 0 || ratio > v.max_ratio) {
            v.max_ratio = ratio, v.worst = std::int64_t(i);
            v.worst_got = got[i], v.worst_exact = exact[i], v.worst_ulp = ulps, v.worst_allowed = a;
        }
    }
    v.passed = v.over == 0;
    v.over_fraction = n ? double(v.over) / double(n) : 0;
    if (v.worst >= 0) { // the flat index in C order as a multi-index of `shape`
        v.worst_index.assign(shape.size(), 0);
        std::int64_t flat = v.worst;
        for (std::size_t d = shape.size(); d-- > 0;) {
            v.worst_index[d] = shape[d] ? flat % shape[d] : 0;
            flat = shape[d] ? flat / shape[d] : 0;
        }
    }
    return v;
}

} // namespace bnorm
