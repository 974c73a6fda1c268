// The case classes of bnorm gen (bnorm/cases.hpp): each draws x, γ, β and dy from its own
// streams of bnorm::Random, and rounds each value once to the dtype.
#include "bnorm/cases.hpp"

#include "bnorm/error.hpp"
#include "bnorm/half.hpp"
#include "bnorm/random.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <functional>

namespace bnorm {
namespace {

/// Which set an element belongs to, and which γ entry it takes.
struct Place {
    std::int64_t set, param;
};

/// The set and γ entry of flat element i (C order) of p, per family.hpp's layouts.
Place place(const NormProblem& p, std::int64_t i) {
    if (p.norm == Norm::layer || p.norm == Norm::rms) return {i / p.per_set, i % p.per_set};
    const std::int64_t c = (i / p.inner) % p.channels;
    const std::int64_t n = i / (p.inner * p.channels * p.middle); // 0 for batch (samples = 1)
    switch (p.norm) {
    case Norm::instance: return {n * p.channels + c, c};
    case Norm::group: return {n * p.groups + c / (p.channels / p.groups), c};
    default: return {c, c};
    }
}

/// The dtype's largest exponent emax: "huge" draws |x| < 6·2^(emax − 4), below the overflow.
/// And the scale of "tiny", 2^tiny_exponent: invstd ~ 1/scale and dx ~ |γ·dy|·invstd stay
/// below the overflow too (float16, whose range is too narrow for that, scales dy with x).
int max_exponent(DType t) {
    switch (t) {
    case DType::f64: return 1023;
    case DType::f16: return 15;
    default: return 127; // float32, bfloat16
    }
}
int tiny_exponent(DType t) {
    switch (t) {
    case DType::f64: return -1010;
    case DType::f16: return -18; // |x| < 6·2^-18 < 2^-14: subnormal, 64 steps of 2^-24 per unit of spread
    default: return -116;        // float32, bfloat16 (subnormal below 2^-126)
    }
}

/// The offset of "offset" and "eval_offset": the mean as many spreads away as the dtype's
/// precision leaves the spread a few digits (float16: x² ~ 1e6 overflows float16 too).
double offset_of(DType t) {
    switch (t) {
    case DType::f64: return 1e8;
    case DType::f32: return 1e4;
    case DType::f16: return 1e3; // ulp 0.5
    default: return 1e2;         // bfloat16: ulp 0.5
    }
}

/// The noise of dy_cancel: about one ulp of the dtype at 1, below which rounding dy hides it.
double cancel_noise(DType t) {
    switch (t) {
    case DType::f64: return 1e-10;
    case DType::f32: return 1e-5;
    case DType::f16: return 1e-3;
    default: return 1e-2; // bfloat16
    }
}

/// The largest finite value of a half type (the Cauchy draws are clamped to it), else inf.
double max_finite(DType t) {
    if (t == DType::f16) return 65504;
    if (t == DType::bf16) return std::ldexp(255.0, 120); // (2 − 2^-7)·2^127
    return HUGE_VAL;
}

/// The sets of two elements: see make_case's contract.
NormProblem adapt_to_pairs(const NormProblem& p) {
    Shape s = p.shape;
    const int rank = int(s.size());
    std::vector<int> normalized; // the axes a set runs over, but the channel axis
    for (int d = 0; d < rank; ++d) {
        const bool rows = p.norm == Norm::layer || p.norm == Norm::rms;
        if (rows ? d >= p.axis : (d != p.axis && !(d == 0 && p.norm != Norm::batch))) normalized.push_back(d);
    }
    std::int64_t first = 2;
    if (p.norm == Norm::group) {
        const std::int64_t per_group = p.channels / p.groups;
        if (per_group == 2) first = 1;
        if (per_group > 2) s[std::size_t(p.axis)] = 2 * p.groups, first = 1;
    }
    for (std::size_t k = 0; k < normalized.size(); ++k) s[std::size_t(normalized[k])] = k == 0 ? first : 1;
    return check_norm_problem(s, p.norm, p.axis, p.groups, "the class 'two'");
}

/// The spacing of t's values just above |v|.
double ulp_at(DType t, double v) {
    int e = 0;
    std::frexp(v, &e); // v = f·2^e, f in [0.5, 1)
    const int digits = t == DType::f64 ? 53 : t == DType::f32 ? 24 : t == DType::f16 ? 11 : 8;
    return std::ldexp(1.0, e - digits);
}

struct Drawn {
    std::function<double(Random&, std::int64_t /*set*/)> x; // one x value of a set
    std::string eps = "1e-5";
    std::string hard_because;
};

Drawn class_data(const std::string& name, Norm norm, DType t) {
    const bool rms = norm == Norm::rms;
    const char* type = dtype_name(t);
    const auto normal = [](Random& r, std::int64_t) { return r.normal(); };
    Drawn d;
    if (name == "normal" || name == "eval") {
        d.x = normal;
        d.hard_because = "nothing: normal x, γ, β and dy; a kernel that fails here is wrong, not inaccurate";
    } else if (name == "eval_offset") {
        const double offset = offset_of(t);
        d.x = [offset](Random& r, std::int64_t) { return offset + r.normal(); };
        d.hard_because = fmt::format("inference mode with x and the running mean {:g} times the spread: a kernel "
                                     "that folds y into x·(γ·invstd) + (β − mean·γ·invstd) loses {} digits to "
                                     "cancellation",
                                     offset, std::log10(offset));
    } else if (name == "offset") {
        const double offset = offset_of(t);
        d.x = [offset](Random& r, std::int64_t) { return offset + r.normal(); };
        d.hard_because = rms ? fmt::format("x = {:g} + normal: x̂ is nearly 1 everywhere, so dx's two terms cancel to "
                                           "{:g} of their size",
                                           offset, 1 / offset)
                             : fmt::format("each set's mean is {:g} times its spread: the one-pass variance E[x²] − "
                                           "mean² cancels {} digits, {} {} holds, and one ulp of the mean is "
                                           "{:.2g} of the spread",
                                           offset, std::log10(offset) * 2, is_half(t) ? "more than" : "all that", type,
                                           ulp_at(t, offset));
    } else if (name == "constant") {
        d.x = [rms](Random& r, std::int64_t set) {
            if (set == 0) return 1.5; // one value for the whole set
            if (rms && set == 1) return 0.0;
            return r.normal();
        };
        d.hard_because = rms ? "set 0 is constant and set 1 all zeros: mean(x²) = 0 there, invstd = 1/sqrt(eps), and a "
                               "kernel without eps divides by zero"
                             : "set 0 is constant: var = 0, so x̂ = 0 and y = β exactly, invstd = 1/sqrt(eps), and a "
                               "kernel that drops eps or computes a negative variance gets NaN";
    } else if (name == "two") {
        d.x = normal;
        d.hard_because = "each set has m = 2 elements: x̂ = ±sqrt(var/(var + eps)) exactly, and dx's terms cancel to "
                         "the eps/(var + eps) residue";
    } else if (name == "cauchy") {
        d.x = [](Random& r, std::int64_t) { return r.cauchy(); };
        d.hard_because = "heavy tails (standard Cauchy): a few elements make the variance, and the others are "
                         "rounding-sized against the sums";
    } else if (name == "dy_cancel") {
        d.x = [](Random& r, std::int64_t) { return 10 * r.normal(); };
        d.hard_because = fmt::format("dy = (a + b·x̂)/γ per set plus {:g} noise: dx's terms cancel to the noise and "
                                     "eps/(var + eps) of their size",
                                     cancel_noise(t));
    } else if (name == "tiny_var") {
        // half types: a spread of 1e-3 about 1/64, where it is 8 (bfloat16) or 64 (float16) ulps
        const double center = rms ? 0.0 : is_half(t) ? 1.0 / 64 : 1.0, spread = is_half(t) ? 1e-3 : 1e-4;
        d.x = [center, spread](Random& r, std::int64_t) { return center + spread * r.normal(); };
        d.eps = "1e-3";
        d.hard_because = fmt::format("{} ({}) is far below eps (1e-3): invstd is nearly 1/sqrt(eps) and y holds "
                                     "only the spread's digits",
                                     rms ? "mean(x²)" : "the variance", is_half(t) ? "1e-6" : "1e-8");
    } else if (name == "huge") {
        const double scale = std::ldexp(1.0, max_exponent(t) - 4);
        d.x = [scale](Random& r, std::int64_t) { return scale * r.normal(); };
        d.hard_because = fmt::format("|x| up to 6·2^{}, near the overflow of {}: x² and Σx overflow in {}, yet every "
                                     "output is finite",
                                     max_exponent(t) - 4, type, t == DType::f64 ? "double" : type);
    } else {
        assert(name == "tiny");
        const double scale = std::ldexp(1.0, tiny_exponent(t));
        d.x = [scale](Random& r, std::int64_t) { return scale * r.normal(); };
        d.eps = "0";
        d.hard_because = fmt::format("|x| ~ 2^{} with eps = 0, near the underflow of {} ({} values subnormal): the "
                                     "variance underflows in {}, yet invstd ~ 2^{} and every output is finite{}",
                                     tiny_exponent(t), type, t == DType::f16 ? "all" : "some",
                                     t == DType::f64 ? "double" : type, -tiny_exponent(t),
                                     t == DType::f16 ? " (dy ~ 2^-18 too, so that dx stays in float16's range)"
                                                     : "");
    }
    return d;
}

/// dy = (a + b·x̂)/γ per set (a = 0 for rms), rounded, plus noise·normal, rounded: γ·dy is
/// nearly linear in x̂, which the backward pass annihilates. x̂ from double sums (only
/// roughly the exact one: the cancellation need not be perfect).
std::vector<double> cancelling_dy(const GeneratedCase& c, DType t, std::uint64_t seed) {
    const NormProblem& p = c.problem;
    const bool rms = p.norm == Norm::rms;
    const double eps = c.eps_value;
    std::vector<double> sum(std::size_t(p.sets)), sq(std::size_t(p.sets));
    for (std::int64_t i = 0; i < p.size(); ++i) sum[std::size_t(place(p, i).set)] += c.x[std::size_t(i)];
    const double m = double(p.per_set);
    for (std::int64_t i = 0; i < p.size(); ++i) {
        const auto s = std::size_t(place(p, i).set);
        const double d = c.x[std::size_t(i)] - (rms ? 0.0 : sum[s] / m);
        sq[s] += d * d;
    }
    Random coef(seed, c.name + "/coefficients"), noise(seed, c.name + "/dy");
    std::vector<double> a(std::size_t(p.sets)), b(std::size_t(p.sets));
    for (std::size_t s = 0; s < a.size(); ++s) a[s] = rms ? 0.0 : coef.normal(), b[s] = coef.normal();
    const double level = cancel_noise(t);
    std::vector<double> dy(std::size_t(p.size()));
    for (std::int64_t i = 0; i < p.size(); ++i) {
        const Place at = place(p, i);
        const auto s = std::size_t(at.set);
        const double xhat = (c.x[std::size_t(i)] - (rms ? 0.0 : sum[s] / m)) / std::sqrt(sq[s] / m + eps);
        const double lin = round_to(t, (a[s] + b[s] * xhat) / c.gamma[std::size_t(at.param)]);
        dy[std::size_t(i)] = round_to(t, lin + level * noise.normal());
    }
    return dy;
}

/// With eps = 0 a constant set has an infinite invstd: in "tiny", a set whose values all
/// rounded to one (float16's subnormals are 64 steps per unit of spread, so small sets
/// can) gets its first element moved up by 2^tiny_exponent. Never happens in float32 or
/// float64 in practice, whose bytes it thus leaves alone.
void separate_constant_sets(GeneratedCase& c, DType t) {
    const NormProblem& p = c.problem;
    std::vector<std::int64_t> first(std::size_t(p.sets), -1);
    std::vector<bool> constant(std::size_t(p.sets), true);
    for (std::int64_t i = 0; i < p.size(); ++i) {
        const auto s = std::size_t(place(p, i).set);
        if (first[s] < 0) first[s] = i;
        else if (c.x[std::size_t(i)] != c.x[std::size_t(first[s])]) constant[s] = false;
    }
    for (std::size_t s = 0; s < first.size(); ++s)
        if (constant[s] && first[s] >= 0) {
            double& v = c.x[std::size_t(first[s])];
            v = round_to(t, v + std::ldexp(1.0, tiny_exponent(t)));
        }
}

} // namespace

Suite parse_suite(std::string_view text, std::string_view option) {
    if (text == "ordinary") return Suite::ordinary;
    if (text == "hard") return Suite::hard;
    throw UsageError(fmt::format("{} '{}' is not a suite (valid: ordinary, hard)", option, text));
}

std::vector<std::string> case_classes(Suite s, Norm n) {
    std::vector<std::string> names{"normal"};
    if (s == Suite::hard) names = {"offset", "constant", "two", "cauchy", "dy_cancel", "tiny_var", "huge", "tiny"};
    if (n == Norm::batch) names.push_back(s == Suite::hard ? "eval_offset" : "eval");
    return names;
}

GeneratedCase make_case(const std::string& name, const NormProblem& requested, DType dtype, std::uint64_t seed) {
    bool known = false;
    for (const Suite s : {Suite::ordinary, Suite::hard})
        for (const auto& n : case_classes(s, requested.norm)) known = known || n == name;
    if (!known)
        throw UsageError(fmt::format("'{}' is not a case class of --norm {}", name, norm_name(requested.norm)));
    GeneratedCase c;
    c.name = name;
    c.problem = name == "two" ? adapt_to_pairs(requested) : requested;
    const NormProblem& p = c.problem;
    const Drawn d = class_data(name, p.norm, dtype);
    c.eps = d.eps;
    c.eps_value = d.eps == "1e-3" ? 1e-3 : d.eps == "0" ? 0.0 : 1e-5; // the doubles nearest the decimals
    c.hard_because = d.hard_because;

    Random rx(seed, name + "/x");
    c.x.resize(std::size_t(p.size()));
    const double top = max_finite(dtype); // keeps Cauchy's tail finite in float16
    for (std::int64_t i = 0; i < p.size(); ++i)
        c.x[std::size_t(i)] = round_to(dtype, std::clamp(d.x(rx, place(p, i).set), -top, top));
    if (name == "tiny") separate_constant_sets(c, dtype);

    // γ away from 0 for dy_cancel, which divides by it; otherwise normal.
    Random rg(seed, name + "/gamma"), rb(seed, name + "/beta");
    c.gamma.resize(std::size_t(p.params));
    for (auto& g : c.gamma) {
        const double v = rg.normal();
        g = round_to(dtype, name == "dy_cancel" ? (v < 0 ? -0.5 : 0.5) + v / 12 : v); // |γ| in [0.5, 1]
    }
    if (p.norm != Norm::rms) {
        c.beta.resize(std::size_t(p.params));
        for (auto& b : c.beta) b = round_to(dtype, rb.normal());
    }
    if (name == "eval" || name == "eval_offset") {
        // the running mean near the data's (offset + normal/2), the variance in [0.5, 2]
        c.eval = true;
        const double base = name == "eval" ? 0.0 : offset_of(dtype);
        Random rr(seed, name + "/running");
        for (std::int64_t k = 0; k < p.channels; ++k) {
            c.running_mean.push_back(round_to(dtype, base + 0.5 * rr.normal()));
            c.running_var.push_back(round_to(dtype, 0.5 + 1.5 * rr.uniform()));
        }
    }
    if (name == "dy_cancel") {
        c.dy = cancelling_dy(c, dtype, seed);
    } else {
        Random rd(seed, name + "/dy");
        c.dy.resize(std::size_t(p.size()));
        // float16's tiny: dy at x's scale, so that dx ~ γ·dy·invstd is O(1), not 2^18
        const double scale = name == "tiny" && dtype == DType::f16 ? std::ldexp(1.0, tiny_exponent(dtype)) : 1.0;
        for (auto& v : c.dy) v = round_to(dtype, scale * rd.normal());
    }
    return c;
}

} // namespace bnorm
