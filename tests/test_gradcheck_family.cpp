// gradcheck of the normalization family (instance, group, layer, rms) must pass the exact
// gradients and flag every wrong backward pass below with its default tolerances, in
// float64 and float32, channels-first and channels-last. The gradients judged come from
// the naive long-double implementation of tests/naive_gradcheck_family.hpp, which carries
// each mutant by one switch. The complex-step derivatives are also checked against
// Richardson-extrapolated finite differences of that implementation's forward pass.
#include "helpers.hpp"
#include "naive_gradcheck_family.hpp"

#include "bnorm/error.hpp"
#include "bnorm/family.hpp"
#include "bnorm/gradcheck.hpp"
#include "bnorm/judge.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <limits>
#include <map>
#include <random>

using namespace bnorm;
using bnorm::test::FamilyMutant;

namespace {

const char* name(FamilyMutant mu) {
    const char* names[] = {"none",           "unbiased_variance",   "eps_outside_sqrt",
                           "one_element",    "rms_sum_dxhat",       "layer_dgamma_axes",
                           "layer_no_xhat_term", "group_channel_stats", "group_dbeta_per_group",
                           "instance_batch_stats"};
    return names[static_cast<int>(mu)];
}

struct Case {
    NormProblem p;
    double eps;
    std::vector<double> x, gamma, beta, dy; // beta empty for rms
    std::string repro;
};

/// Ordinary data, rounded to float when `f32` (the naive reference then starts from the
/// float values).
Case make_case(Norm norm, Shape shape, int axis, std::int64_t groups, double eps, bool f32, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    Case c{check_norm_problem(shape, norm, axis, groups, "x"), eps, {}, {}, {}, {}, {}};
    auto round = [&](double v) { return f32 ? double(float(v)) : v; };
    for (std::int64_t i = 0; i < c.p.size(); ++i) c.x.push_back(round(0.3 + 1.7 * normal(rng)));
    for (std::int64_t i = 0; i < c.p.size(); ++i) c.dy.push_back(round(normal(rng)));
    for (std::int64_t i = 0; i < c.p.params; ++i) c.gamma.push_back(round(normal(rng)));
    if (norm != Norm::rms)
        for (std::int64_t i = 0; i < c.p.params; ++i) c.beta.push_back(round(normal(rng)));
    c.repro = fmt::format("{}_shape{}_axis{}{}_eps{}_{}", norm_name(norm), fmt::join(shape, "x"), axis,
                          groups ? fmt::format("_g{}", groups) : "", eps, f32 ? "f32" : "f64");
    return c;
}

template <class T> std::vector<T> as(const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); }
template <class T> const T* ptr(const std::vector<T>& v) { return v.empty() ? nullptr : v.data(); }

/// gradcheck<T> of the case against the given gradients.
template <class T>
GradcheckReport judge(const Case& c, const test::NaiveFamily& g, const GradcheckOptions& opt = {}) {
    const auto x = as<T>(c.x), gamma = as<T>(c.gamma), beta = as<T>(c.beta), dy = as<T>(c.dy);
    const auto dx = as<T>(g.dx), dg = as<T>(g.dgamma), db = as<T>(g.dbeta);
    return gradcheck<T>(x.data(), c.p, gamma.data(), ptr(beta), dy.data(), c.eps,
                        GivenGradients<T>{dx.data(), dg.data(), ptr(db)}, opt);
}

double ratio(const GradcheckReport& r) { return std::max({r.x.worst_ratio, r.gamma.worst_ratio, r.beta.worst_ratio}); }

/// The problems of each norm: channels first and last, axis in the middle for layer.
struct Spec {
    Norm norm;
    Shape shape;
    int axis;
    std::int64_t groups;
};
const Spec kSpecs[] = {
    {Norm::instance, {3, 4, 5}, 1, 0},       {Norm::instance, {2, 3, 4, 5}, 1, 0},
    {Norm::instance, {2, 4, 5, 3}, -1, 0},   {Norm::group, {2, 6, 5}, 1, 3},
    {Norm::group, {2, 6, 3, 4}, 1, 2},       {Norm::group, {2, 4, 3, 6}, -1, 3},
    {Norm::layer, {6, 10}, -1, 0},           {Norm::layer, {3, 4, 5}, 1, 0},
    {Norm::layer, {2, 3, 8}, 2, 0},          {Norm::rms, {6, 10}, -1, 0},
    {Norm::rms, {3, 4, 5}, 1, 0},            {Norm::rms, {2, 3, 2, 4}, -2, 0},
};

std::vector<FamilyMutant> mutants_of(Norm norm) {
    std::vector<FamilyMutant> m = {FamilyMutant::unbiased_variance, FamilyMutant::eps_outside_sqrt,
                                   FamilyMutant::one_element};
    switch (norm) {
    case Norm::rms: m.push_back(FamilyMutant::rms_sum_dxhat); break;
    case Norm::layer: m.insert(m.end(), {FamilyMutant::layer_dgamma_axes, FamilyMutant::layer_no_xhat_term}); break;
    case Norm::group: m.insert(m.end(), {FamilyMutant::group_channel_stats, FamilyMutant::group_dbeta_per_group}); break;
    case Norm::instance: m.push_back(FamilyMutant::instance_batch_stats); break;
    case Norm::batch: break;
    }
    return m;
}

} // namespace

TEST_CASE("family gradcheck passes the exact gradients and flags every mutant, float64 and float32") {
    int runs = 0, flagged = 0, problems = 0;
    double exact_worst64 = 0, exact_worst32 = 0;
    std::map<std::string, double> margin; // mildest error/tolerance of each norm's mutant
    std::uint64_t seed = 100;
    for (const Spec& s : kSpecs) {
        for (const bool f32 : {false, true}) {
            for (const double eps : f32 ? std::vector<double>{1e-3} : std::vector<double>{1e-5, 1e-3}) {
                const Case c = make_case(s.norm, s.shape, s.axis, s.groups, eps, f32, seed++);
                CAPTURE(c.repro);
                ++problems;
                // one element off by ~1e2 of the dtype's rtol, i.e. far beyond rounding
                const double off = f32 ? 1e-3 : 1e-6;
                auto run = [&](FamilyMutant mu) {
                    const auto g = test::naive_family(c.p, c.x, c.gamma, c.beta, c.dy, c.eps, mu, off);
                    return f32 ? judge<float>(c, g) : judge<double>(c, g);
                };
                const GradcheckReport exact = run(FamilyMutant::none);
                CHECK(exact.passed);
                CHECK(exact.mode == "elementwise");
                CHECK(exact.x.checked == exact.x.total);
                CHECK(exact.gamma.checked == c.p.params);
                CHECK(exact.beta.judged == (s.norm != Norm::rms));
                (f32 ? exact_worst32 : exact_worst64) = std::max(f32 ? exact_worst32 : exact_worst64, ratio(exact));
                for (const FamilyMutant mu : mutants_of(s.norm)) {
                    CAPTURE(name(mu));
                    const GradcheckReport r = run(mu);
                    CHECK_FALSE(r.passed);
                    ++runs;
                    flagged += !r.passed;
                    const std::string key = fmt::format("{}.{}.{}", norm_name(s.norm), name(mu), f32 ? "f32" : "f64");
                    margin.try_emplace(key, INFINITY);
                    margin[key] = std::min(margin[key], ratio(r));
                }
            }
        }
    }
    std::string margins;
    for (const auto& [k, v] : margin) margins += fmt::format(" {}={:.2g}", k, v);
    MESSAGE(fmt::format("family gradcheck flagged {} of {} mutant runs on {} problems; exact gradients reach at most "
                        "{:.2g} (float64) and {:.2g} (float32) of the tolerance; error/tolerance of the mildest run "
                        "of each mutant:{}",
                        flagged, runs, problems, exact_worst64, exact_worst32, margins));
}

TEST_CASE("family gradcheck points at the wrong element of x and the wrong parameter, in their own shapes") {
    {   // instance, channels last: x is (2, 4, 5, 3), dx wrong at (1, 2, 3, 1)
        const Case c = make_case(Norm::instance, {2, 4, 5, 3}, -1, 0, 1e-5, false, 7);
        auto g = test::naive_family(c.p, c.x, c.gamma, c.beta, c.dy, c.eps);
        g.dx[((1 * 4 + 2) * 5 + 3) * 3 + 1] *= 1 + 1e-6;
        g.dbeta[2] *= 1 + 1e-6;
        const GradcheckReport r = judge<double>(c, g);
        CHECK_FALSE(r.x.passed);
        CHECK(r.x.worst_index == std::vector<std::int64_t>{1, 2, 3, 1});
        CHECK(r.gamma.passed);
        CHECK_FALSE(r.beta.passed);
        CHECK(r.beta.worst_index == std::vector<std::int64_t>{2});
    }
    {   // layer over axes 1.. of (3, 4, 5): γ is (4, 5), dγ wrong at (2, 3)
        const Case c = make_case(Norm::layer, {3, 4, 5}, 1, 0, 1e-5, false, 8);
        auto g = test::naive_family(c.p, c.x, c.gamma, c.beta, c.dy, c.eps);
        g.dgamma[2 * 5 + 3] *= 1 + 1e-6;
        const GradcheckReport r = judge<double>(c, g);
        CHECK(r.x.passed);
        CHECK_FALSE(r.gamma.passed);
        CHECK(r.gamma.worst_index == std::vector<std::int64_t>{2, 3});
        CHECK(r.gamma.total == 20);
        CHECK(r.beta.passed);
    }
    {   // group, (2, 6, 3, 4) with 2 groups: dx wrong at (1, 4, 2, 0)
        const Case c = make_case(Norm::group, {2, 6, 3, 4}, 1, 2, 1e-5, false, 9);
        auto g = test::naive_family(c.p, c.x, c.gamma, c.beta, c.dy, c.eps);
        g.dx[((1 * 6 + 4) * 3 + 2) * 4 + 0] *= 1 + 1e-6;
        const GradcheckReport r = judge<double>(c, g);
        CHECK(r.x.worst_index == std::vector<std::int64_t>{1, 4, 2, 0});
        CHECK_FALSE(r.x.passed);
    }
}

TEST_CASE("family gradcheck: the complex step agrees with finite differences of a naive forward") {
    // Richardson-extrapolated central differences of f = Σ dy·y in long double, from the
    // naive forward: error O(h⁴) + O(2^-64/h), ~1e-12 relative at h = 2^-10 of the spread.
    // Given as the gradients to judge, they must pass a 1e-9 tolerance.
    for (const Spec& s : {Spec{Norm::instance, {2, 3, 4}, 1, 0}, Spec{Norm::group, {2, 4, 3}, 1, 2},
                          Spec{Norm::layer, {3, 2, 3}, 1, 0}, Spec{Norm::rms, {3, 5}, -1, 0}}) {
        const Case c = make_case(s.norm, s.shape, s.axis, s.groups, 1e-3, false, 21);
        CAPTURE(c.repro);
        const auto ix = test::naive_index(c.p);
        using LD = long double;
        std::vector<LD> x(c.x.begin(), c.x.end()), gamma(c.gamma.begin(), c.gamma.end()),
            beta(c.beta.begin(), c.beta.end());
        if (beta.empty()) beta.assign(gamma.size(), 0);
        auto derivative = [&](std::vector<LD>& v, std::size_t i) {
            const LD v0 = v[i], h = 0x1p-10L;
            auto central = [&](LD hh) {
                v[i] = v0 + hh;
                const LD plus = test::naive_objective(c.p, ix, x, gamma, beta, c.dy, c.eps);
                v[i] = v0 - hh;
                const LD minus = test::naive_objective(c.p, ix, x, gamma, beta, c.dy, c.eps);
                v[i] = v0;
                return (plus - minus) / (2 * hh);
            };
            return double((4 * central(h / 2) - central(h)) / 3);
        };
        test::NaiveFamily fd;
        for (std::size_t i = 0; i < x.size(); ++i) fd.dx.push_back(derivative(x, i));
        for (std::size_t q = 0; q < gamma.size(); ++q) fd.dgamma.push_back(derivative(gamma, q));
        if (s.norm != Norm::rms)
            for (std::size_t q = 0; q < beta.size(); ++q) fd.dbeta.push_back(derivative(beta, q));
        GradcheckOptions opt;
        opt.rtol = 1e-9;
        const GradcheckReport r = judge<double>(c, fd, opt);
        CHECK(r.passed);
        MESSAGE(fmt::format("{}: complex step vs finite differences, max rel err dx {:.2g}, dgamma {:.2g}, dbeta {:.2g}; "
                            "its Richardson crosscheck {:.2g}",
                            c.repro, r.x.max_rel_err, r.gamma.max_rel_err, r.beta.max_rel_err,
                            r.estimated_method_error));
        // and the finite differences do tell the mutants apart at that tolerance
        const auto wrong = test::naive_family(c.p, c.x, c.gamma, c.beta, c.dy, c.eps, FamilyMutant::unbiased_variance);
        for (std::size_t i = 0; i < fd.dx.size(); ++i) fd.dx[i] = wrong.dx[i];
        CHECK_FALSE(judge<double>(c, fd, opt).passed);
    }
}

TEST_CASE("family gradcheck in randomized mode catches one wrong row of a large layer norm") {
    const Case c = make_case(Norm::layer, {3000, 6}, -1, 0, 1e-5, false, 31); // 18000 elements
    auto g = test::naive_family(c.p, c.x, c.gamma, c.beta, c.dy, c.eps);
    const GradcheckReport good = judge<double>(c, g);
    CHECK(good.mode == "randomized");
    CHECK(good.passed);
    CHECK(good.x.checked < good.x.total);
    CHECK(good.x.directional_checks == 3000 * 4);
    for (int j = 0; j < 6; ++j) g.dx[1234 * 6 + j] *= 1 + 1e-7; // row 1234 only
    const GradcheckReport bad = judge<double>(c, g);
    CHECK_FALSE(bad.passed);
    CHECK_FALSE(bad.x.directional_passed);
    CHECK(bad.x.directional_worst_channel == 1234); // the set's index
    CHECK(bad.gamma.passed);
}

TEST_CASE("family gradcheck judges bnorm's own backward of each norm") {
    for (const Spec& s : kSpecs) {
        for (const bool f32 : {false, true}) {
            const Case c = make_case(s.norm, s.shape, s.axis, s.groups, 1e-5, f32, 41);
            CAPTURE(c.repro);
            GradcheckOptions opt;
            opt.threads = 2;
            const auto x = as<float>(c.x), gamma = as<float>(c.gamma), beta = as<float>(c.beta);
            const GradcheckReport r =
                f32 ? gradcheck<float>(x.data(), c.p, gamma.data(), ptr(beta), nullptr, c.eps, {}, opt)
                    : gradcheck<double>(c.x.data(), c.p, c.gamma.data(), ptr(c.beta), nullptr, c.eps, {}, opt);
            CHECK(r.passed);
            CHECK(r.dy_draws == 3);
            CHECK_FALSE(r.gradients_given);
            CHECK(r.beta.judged == (s.norm != Norm::rms));
        }
    }
    // the same report for any thread count
    const Case c = make_case(Norm::group, {3, 6, 7}, 1, 3, 1e-3, false, 42);
    GradcheckOptions one, two;
    one.threads = 1;
    two.threads = 2;
    const auto a = gradcheck<double>(c.x.data(), c.p, c.gamma.data(), c.beta.data(), nullptr, c.eps, {}, one);
    const auto b = gradcheck<double>(c.x.data(), c.p, c.gamma.data(), c.beta.data(), nullptr, c.eps, {}, two);
    CHECK(a.x.max_abs_err == b.x.max_abs_err);
    CHECK(a.x.worst_index == b.x.worst_index);
    CHECK(a.gamma.worst_numerical == b.gamma.worst_numerical);
    CHECK(a.estimated_method_error == b.estimated_method_error);
}

TEST_CASE("family gradcheck: batch goes to the layout overload; the refusals") {
    const Case c = make_case(Norm::batch, {5, 3, 4}, 1, 0, 1e-5, false, 51);
    const auto g = gradcheck<double>(c.x.data(), c.p, c.gamma.data(), c.beta.data(), c.dy.data(), c.eps, {}, {});
    const auto l = gradcheck<double>(c.x.data(), c.p.shape, collapse(c.p.shape, 1), c.gamma.data(), c.beta.data(),
                                     c.dy.data(), c.eps, {}, {});
    CHECK(g.passed);
    CHECK(g.x.max_abs_err == l.x.max_abs_err);
    CHECK(g.gamma.worst_numerical == l.gamma.worst_numerical);
    CHECK(g.estimated_method_error == l.estimated_method_error);
    CHECK(g.forward_evaluations == l.forward_evaluations);

    const Case r = make_case(Norm::rms, {4, 6}, -1, 0, 1e-5, false, 52);
    const std::vector<double> ones(6, 1.0);
    GradcheckOptions eval;
    eval.eval = true;
    CHECK_THROWS_AS(gradcheck<double>(r.x.data(), r.p, r.gamma.data(), nullptr, r.dy.data(), r.eps, {}, eval),
                    UsageError);
    CHECK_THROWS_AS(gradcheck<double>(r.x.data(), r.p, r.gamma.data(), ones.data(), r.dy.data(), r.eps, {}, {}),
                    UsageError);
    CHECK_THROWS_AS(gradcheck<double>(r.x.data(), r.p, r.gamma.data(), nullptr, r.dy.data(), r.eps,
                                      GivenGradients<double>{nullptr, nullptr, ones.data()}, {}),
                    UsageError);
    CHECK_THROWS_AS(gradcheck<double>(r.x.data(), r.p, r.gamma.data(), nullptr, nullptr, r.eps,
                                      GivenGradients<double>{r.x.data(), nullptr, nullptr}, {}),
                    UsageError);
    // eps = 0 and a set whose var + eps is 0: a constant channel of sample 1, a row of zeros
    Case k = make_case(Norm::instance, {2, 3, 4}, 1, 0, 0, false, 53);
    for (int i = 0; i < 4; ++i) k.x[(1 * 3 + 2) * 4 + i] = 2.5;
    CHECK_THROWS_WITH_AS(gradcheck<double>(k.x.data(), k.p, nullptr, nullptr, nullptr, 0, {}, {}),
                         doctest::Contains("sample 1, channel 2"), InputError);
    Case z = make_case(Norm::rms, {3, 4}, -1, 0, 0, false, 54);
    for (int i = 0; i < 4; ++i) z.x[4 + i] = 0;
    CHECK_THROWS_AS(gradcheck<double>(z.x.data(), z.p, nullptr, nullptr, nullptr, 0, {}, {}), InputError);
    for (int i = 0; i < 4; ++i) z.x[4 + i] = 2.5; // constant but not zero: fine for rms
    CHECK(gradcheck<double>(z.x.data(), z.p, nullptr, nullptr, nullptr, 0, {}, {}).passed);
}

TEST_CASE("family gradcheck passes bnorm's own backward on ill-conditioned sets") {
    // Each set offset far from zero with a small spread (the hard cases): the
    // complex step has no cancellation, so a backward that loses digits would fail here.
    struct Hard {
        Spec s;
        double offset, spread;
        bool f32;
    };
    for (const Hard& h : {Hard{{Norm::layer, {6, 40}, -1, 0}, 1e6, 1e-3, false},
                          Hard{{Norm::rms, {6, 40}, -1, 0}, 1e6, 1e-3, false},
                          Hard{{Norm::group, {2, 6, 30}, 1, 3}, 1e6, 1e-3, false},
                          Hard{{Norm::instance, {2, 30, 3}, -1, 0}, 1e6, 1e-3, false},
                          Hard{{Norm::layer, {6, 40}, -1, 0}, 1e3, 1.0, true},
                          Hard{{Norm::group, {2, 6, 30}, 1, 3}, 1e3, 1.0, true}}) {
        Case c = make_case(h.s.norm, h.s.shape, h.s.axis, h.s.groups, 1e-5, h.f32, 61);
        for (auto& v : c.x) v = h.f32 ? double(float(h.offset + h.spread * v)) : h.offset + h.spread * v;
        CAPTURE(c.repro);
        CAPTURE(h.offset);
        const auto x = as<float>(c.x), gamma = as<float>(c.gamma), beta = as<float>(c.beta), dy = as<float>(c.dy);
        const GradcheckReport r =
            h.f32 ? gradcheck<float>(x.data(), c.p, gamma.data(), ptr(beta), dy.data(), c.eps, {}, {})
                  : gradcheck<double>(c.x.data(), c.p, c.gamma.data(), ptr(c.beta), c.dy.data(), c.eps, {}, {});
        CHECK(r.passed);
        // (the Richardson reference of this estimate loses digits to the offset: ~1e-18)
        CHECK(r.estimated_method_error < 1e-15);
        // and the naive long-double backward, which loses ~6 digits to the offset, does not
        if (!h.f32 && h.s.norm != Norm::rms) {
            const auto g = test::naive_family(c.p, c.x, c.gamma, c.beta, c.dy, c.eps);
            CHECK_FALSE(judge<double>(c, g).passed);
        }
    }
}

namespace {

/// One golden case of tests/data/golden/family (mpmath's exact gradients, rounded once):
/// its exact gradients must pass, the same with the largest dx off by 100 times an upper
/// bound of its tolerance must not, and bnorm's own backward must pass. Returns the worst ratio to the tolerance of
/// the exact gradients.
template <class T> double golden_gradcheck(const std::filesystem::path& dir, const nlohmann::json& meta) {
    auto load = [&](const std::string& f) { return test::load_npy((dir / (f + ".npy")).string()); };
    auto vec = [](const Array& a) { return std::vector<T>(a.data<T>(), a.data<T>() + a.size()); };
    const Norm norm = parse_norm(meta["norm"].get<std::string>());
    const std::int64_t groups = meta["groups"].is_number() ? meta["groups"].get<std::int64_t>() : 0;
    const Array xa = load("x");
    REQUIRE(xa.dtype() == dtype_of<T>());
    const NormProblem p = check_norm_problem(xa.shape(), norm, meta["axis"].get<int>(), groups, "x");
    const double eps = std::stod(meta["eps"].get<std::string>());
    const bool rms = norm == Norm::rms;
    const std::vector<T> x = vec(xa), gamma = vec(load("gamma")), dy = vec(load("dy")),
                         beta = rms ? std::vector<T>{} : vec(load("beta"));
    // the golden outputs are float64 (the exact values rounded once): rounded to T here
    auto out = [&](const std::string& f) { return as<T>(test::to_doubles(load(f))); };
    std::vector<T> dx = out("dx");
    const std::vector<T> dg = out("dgamma"), db = rms ? std::vector<T>{} : out("dbeta");
    auto check = [&](const T* dxp) {
        return gradcheck<T>(x.data(), p, gamma.data(), ptr(beta), dy.data(), eps,
                            GivenGradients<T>{dxp, dg.data(), ptr(db)}, {});
    };
    const GradcheckReport exact = check(dx.data());
    CHECK(exact.passed);
    const auto big = std::max_element(dx.begin(), dx.end(), [](T a, T b) { return std::abs(a) < std::abs(b); });
    // The default tolerance of dx_i is k·eps·scale_i, scale_i = |γ|·invstd·(|dy_i| + mean|dy|
    // + |x̂_i|·mean|dy·x̂|) over its set (rms without mean|dy|), and |x̂| <= sqrt(m), so
    // scale_i <= max invstd·max|γ|·max|dy|·(2 + m): from mpmath's invstd, not from bnorm.
    auto max_abs = [](const auto& v) {
        double m = 0;
        for (const auto e : v) m = std::max(m, std::abs(double(e)));
        return m;
    };
    const double bound = max_abs(test::to_doubles(load("invstd"))) * max_abs(gamma) * max_abs(dy) *
                         (2 + double(p.per_set));
    const double off = 100 * kJudgeDefaultK * double(std::numeric_limits<T>::epsilon()) * bound;
    *big = T(double(*big) + (*big < 0 ? -off : off));
    CHECK_FALSE(check(dx.data()).passed);
    CHECK(gradcheck<T>(x.data(), p, gamma.data(), ptr(beta), dy.data(), eps, {}, {}).passed);
    return ratio(exact);
}

} // namespace

TEST_CASE("family gradcheck on the golden cases: mpmath's gradients and bnorm's backward pass, one wrong element does not") {
    const std::filesystem::path root = test::data_dir() + "/golden/family";
    std::vector<std::filesystem::path> dirs;
    for (const auto& e : std::filesystem::directory_iterator(root))
        if (std::filesystem::exists(e.path() / "case.json")) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    REQUIRE(dirs.size() >= 80);
    double worst32 = 0, worst64 = 0;
    for (const auto& dir : dirs) {
        const auto meta = nlohmann::json::parse(test::slurp((dir / "case.json").string()));
        CAPTURE(dir.filename().string());
        if (meta["dtype"] == "float32") worst32 = std::max(worst32, golden_gradcheck<float>(dir, meta));
        else worst64 = std::max(worst64, golden_gradcheck<double>(dir, meta));
    }
    MESSAGE(fmt::format("{} golden family cases: mpmath's gradients reach at most {:.2g} (float32) and {:.2g} "
                        "(float64) of gradcheck's default tolerance",
                        dirs.size(), worst32, worst64));
}

TEST_CASE("family gradcheck at any magnitude: x times 2^600 and 2^-600 (eps = 0), exact gradients pass, mutants fail") {
    // With eps = 0, y(2^k·x) = y(x): dx scales by 2^-k and dγ, dβ do not (exact powers of
    // two), so the naive gradients of x give those of 2^k·x. Once the complex step's
    // squares and cubes left double's range there, and exact gradients failed.
    std::uint64_t seed = 700;
    for (const Spec& s : kSpecs)
        for (const int k : {600, -600}) {
            Case c = make_case(s.norm, s.shape, s.axis, s.groups, 0.0, false, seed++);
            CAPTURE(c.repro);
            CAPTURE(k);
            auto scaled = [&](test::NaiveFamily g) {
                for (double& v : g.dx) v = std::ldexp(v, -k);
                return g;
            };
            const test::NaiveFamily exact = scaled(test::naive_family(c.p, c.x, c.gamma, c.beta, c.dy, c.eps));
            std::vector<test::NaiveFamily> wrong;
            for (const FamilyMutant mu : mutants_of(s.norm))
                if (mu != FamilyMutant::eps_outside_sqrt) // the same function when eps = 0
                    wrong.push_back(scaled(test::naive_family(c.p, c.x, c.gamma, c.beta, c.dy, c.eps, mu, 1e-6)));
            for (double& v : c.x) v = std::ldexp(v, k);
            CHECK(judge<double>(c, exact).passed);
            for (const test::NaiveFamily& g : wrong) CHECK_FALSE(judge<double>(c, g).passed);
        }
}

TEST_CASE("batch gradcheck at any magnitude: bnorm's backward of x times 2^600 and 2^-600 passes, one element off fails") {
    for (const int k : {600, -600}) {
        CAPTURE(k);
        Case c = make_case(Norm::batch, {6, 4}, 1, 0, 0.0, false, 800 + std::uint64_t(k > 0));
        for (double& v : c.x) v = std::ldexp(v, k);
        CHECK(gradcheck<double>(c.x.data(), c.p, c.gamma.data(), c.beta.data(), c.dy.data(), 0.0, {}, {}).passed);
        std::vector<double> dx(c.x.size()), dg(4), db(4);
        backward<double>(c.x.data(), c.gamma.data(), c.dy.data(), c.p, 0.0, dx.data(), dg.data(), db.data());
        CHECK(gradcheck<double>(c.x.data(), c.p, c.gamma.data(), c.beta.data(), c.dy.data(), 0.0,
                                GivenGradients<double>{dx.data(), dg.data(), db.data()}, {})
                  .passed);
        dx[5] *= 1 + 1e-6;
        CHECK_FALSE(gradcheck<double>(c.x.data(), c.p, c.gamma.data(), c.beta.data(), c.dy.data(), 0.0,
                                      GivenGradients<double>{dx.data(), dg.data(), db.data()}, {})
                        .passed);
    }
}
