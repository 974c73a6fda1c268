// gradcheck must flag every classic wrong backward pass (the mutants below) with its
// default tolerances, and pass the exact gradients of the same problems.
// The gradients judged here come from a long-double backward written for this test,
// which implements each mutant by one switch; unmutated, it is accurate to ~1e-19.
#include "helpers.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"
#include "bnorm/gradcheck.hpp"

#include <fmt/format.h>

#include <random>

using namespace bnorm;

namespace {

enum class Mutant {
    none,
    eps_omitted,         // eps left out of the backward's invstd
    eps_tenth,           // eps ten times smaller in the backward
    unbiased_variance,   // var = Σ(x − mean)²/(m − 1) in the backward
    no_sum_dxhat,        // the Σ dx̂ term missing
    no_xhat_term,        // the x̂·Σ dx̂·x̂ term missing
    xhat_term_sign,      // ... or with the wrong sign
    dgamma_with_x,       // dγ = Σ dy·x instead of Σ dy·x̂
    dbeta_over_m,        // dβ divided by m
    no_gamma_in_dx,      // γ left out of dx
    last_channel_tail,   // the last channel's sums skip its last element (SIMD tail bug)
    one_element,         // a single element of dx off by one part in a million
    mean_shifted,        // the backward's mean off by 1e-7 standard deviations
};

const char* name(Mutant mu) {
    const char* names[] = {"none", "eps_omitted", "eps_tenth", "unbiased_variance", "no_sum_dxhat",
                           "no_xhat_term", "xhat_term_sign", "dgamma_with_x", "dbeta_over_m",
                           "no_gamma_in_dx", "last_channel_tail", "one_element", "mean_shifted"};
    return names[static_cast<int>(mu)];
}

struct Problem {
    Shape shape;
    Layout l;
    double eps;
    std::vector<double> x, gamma, beta, dy;
    std::string repro;
};

Problem make_problem(Shape shape, double eps, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    Problem p{shape, collapse(shape, 1), eps, {}, {}, {}, {}, {}};
    p.x.resize(p.l.size());
    p.dy.resize(p.l.size());
    for (auto& v : p.x) v = 0.3 + 1.7 * normal(rng); // ordinary data
    for (auto& v : p.dy) v = normal(rng);
    for (std::int64_t c = 0; c < p.l.channels; ++c) p.gamma.push_back(normal(rng)), p.beta.push_back(normal(rng));
    p.repro = fmt::format("shape{}_axis1_eps{}_f64", fmt::join(shape, "x"), eps);
    return p;
}

struct Grads {
    std::vector<double> dx, dgamma, dbeta;
};

/// Backward in long double with one deliberate bug (or none). x is (outer, C, inner).
Grads mutant_backward(const Problem& p, Mutant mu) {
    using LD = long double;
    const Layout& l = p.l;
    const std::int64_t C = l.channels, m = l.per_channel();
    auto at = [&](std::int64_t o, std::int64_t c, std::int64_t k) { return (o * C + c) * l.inner + k; };
    Grads g{std::vector<double>(l.size()), std::vector<double>(C), std::vector<double>(C)};
    for (std::int64_t c = 0; c < C; ++c) {
        LD sum = 0, sq = 0;
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t k = 0; k < l.inner; ++k) sum += p.x[at(o, c, k)];
        LD mean = sum / m;
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t k = 0; k < l.inner; ++k) sq += (p.x[at(o, c, k)] - mean) * (p.x[at(o, c, k)] - mean);
        LD var = sq / m;
        LD eps = p.eps;
        if (mu == Mutant::eps_omitted) eps = 0;
        if (mu == Mutant::eps_tenth) eps = p.eps / 10;
        if (mu == Mutant::unbiased_variance) var = sq / (m - 1);
        if (mu == Mutant::mean_shifted) mean += 1e-7L * std::sqrt(var);
        const LD invstd = 1 / std::sqrt(var + eps);
        const LD gamma = mu == Mutant::no_gamma_in_dx ? 1 : p.gamma[c];

        // Σ dx̂ and Σ dx̂·x̂, with dx̂ = γ·dy; the tail mutant drops the last element.
        LD sum_dy = 0, sum_dy_xhat = 0, sum_dy_x = 0;
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t k = 0; k < l.inner; ++k) {
                if (mu == Mutant::last_channel_tail && c == C - 1 && o == l.outer - 1 && k == l.inner - 1) continue;
                const LD dy = p.dy[at(o, c, k)], xhat = (p.x[at(o, c, k)] - mean) * invstd;
                sum_dy += dy;
                sum_dy_xhat += dy * xhat;
                sum_dy_x += dy * p.x[at(o, c, k)];
            }
        g.dbeta[c] = double(mu == Mutant::dbeta_over_m ? sum_dy / m : sum_dy);
        g.dgamma[c] = double(mu == Mutant::dgamma_with_x ? sum_dy_x : sum_dy_xhat);
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t k = 0; k < l.inner; ++k) {
                const LD dxhat = gamma * p.dy[at(o, c, k)], xhat = (p.x[at(o, c, k)] - mean) * invstd;
                LD term2 = gamma * sum_dy, term3 = xhat * gamma * sum_dy_xhat;
                if (mu == Mutant::no_sum_dxhat) term2 = 0;
                if (mu == Mutant::no_xhat_term) term3 = 0;
                if (mu == Mutant::xhat_term_sign) term3 = -term3;
                // dx = (invstd/m)·(m·dx̂ − Σ dx̂ − x̂·Σ dx̂·x̂)
                g.dx[at(o, c, k)] = double(invstd / m * (m * dxhat - term2 - term3));
            }
    }
    if (mu == Mutant::one_element) g.dx[l.size() / 2] *= 1 + 1e-6;
    return g;
}

GradcheckReport judge(const Problem& p, const Grads& g, const GradcheckOptions& opt = {}) {
    return gradcheck<double>(p.x.data(), p.shape, p.l, p.gamma.data(), p.beta.data(), p.dy.data(), p.eps,
                             GivenGradients<double>{g.dx.data(), g.dgamma.data(), g.dbeta.data()}, opt);
}

} // namespace

TEST_CASE("gradcheck flags every mutant and passes the exact gradients, with default tolerances") {
    const Mutant mutants[] = {Mutant::eps_omitted,    Mutant::eps_tenth,      Mutant::unbiased_variance,
                              Mutant::no_sum_dxhat,   Mutant::no_xhat_term,   Mutant::xhat_term_sign,
                              Mutant::dgamma_with_x,  Mutant::dbeta_over_m,   Mutant::no_gamma_in_dx,
                              Mutant::last_channel_tail, Mutant::one_element, Mutant::mean_shifted};
    int flagged = 0, problems = 0;
    double exact_worst = 0;                            // how close exact gradients come to failing
    std::vector<double> margin(std::size(mutants), INFINITY); // how far the mildest run of each mutant fails
    auto ratio = [](const GradcheckReport& r) {
        return std::max({r.x.worst_ratio, r.gamma.worst_ratio, r.beta.worst_ratio});
    };
    std::uint64_t seed = 10;
    for (const Shape& shape : {Shape{16, 4}, Shape{4, 3, 5, 5}}) {
        for (double eps : {1e-5, 1e-8, 1e-3}) {
            const Problem p = make_problem(shape, eps, seed++);
            CAPTURE(p.repro);
            ++problems;
            const GradcheckReport exact = judge(p, mutant_backward(p, Mutant::none));
            CHECK(exact.passed);
            CHECK(exact.x.checked == exact.x.total);
            exact_worst = std::max(exact_worst, ratio(exact));
            // bnorm's own backward, judged the same way
            const GradcheckReport own = gradcheck<double>(p.x.data(), p.shape, p.l, p.gamma.data(), p.beta.data(),
                                                          p.dy.data(), p.eps, {}, {});
            CHECK(own.passed);
            for (std::size_t k = 0; k < std::size(mutants); ++k) {
                CAPTURE(name(mutants[k]));
                const GradcheckReport r = judge(p, mutant_backward(p, mutants[k]));
                CHECK_FALSE(r.passed);
                flagged += !r.passed;
                margin[k] = std::min(margin[k], ratio(r));
            }
        }
    }
    std::string margins;
    for (std::size_t k = 0; k < std::size(mutants); ++k) margins += fmt::format(" {}={:.2g}", name(mutants[k]), margin[k]);
    MESSAGE(fmt::format("gradcheck flagged {} of {} mutant runs ({} mutants x {} problems); exact gradients "
                        "reach at most {:.2g} of the tolerance; error/tolerance of the mildest run of each "
                        "mutant:{}",
                        flagged, problems * std::size(mutants), std::size(mutants), problems, exact_worst, margins));
}

TEST_CASE("gradcheck points at the wrong element and the wrong parameter") {
    const Problem p = make_problem({16, 4}, 1e-5, 99);
    Grads g = mutant_backward(p, Mutant::none);
    g.dx[4 * 5 + 2] *= 1 + 1e-6; // element (5, 2)
    g.dgamma[1] *= 1 + 1e-6;
    const GradcheckReport r = judge(p, g);
    CHECK_FALSE(r.x.passed);
    CHECK(r.x.worst_index == std::vector<std::int64_t>{5, 2});
    CHECK(r.x.worst_ratio > 1);
    CHECK_FALSE(r.gamma.passed);
    CHECK(r.gamma.worst_index == std::vector<std::int64_t>{1});
    CHECK(r.beta.passed);
}

TEST_CASE("gradcheck judges only what it is given") {
    const Problem p = make_problem({8, 3}, 1e-5, 7);
    Grads g = mutant_backward(p, Mutant::dbeta_over_m); // dβ wrong, dx and dγ right
    const GradcheckReport r = gradcheck<double>(p.x.data(), p.shape, p.l, p.gamma.data(), p.beta.data(), p.dy.data(),
                                                p.eps, GivenGradients<double>{g.dx.data(), g.dgamma.data(), nullptr}, {});
    CHECK(r.passed);
    CHECK(r.x.judged);
    CHECK(r.gamma.judged);
    CHECK_FALSE(r.beta.judged);
    CHECK_THROWS_AS(gradcheck<double>(p.x.data(), p.shape, p.l, p.gamma.data(), p.beta.data(), nullptr, p.eps,
                                      GivenGradients<double>{g.dx.data(), nullptr, nullptr}, {}),
                    UsageError);
}

TEST_CASE("float32: exact gradients pass with float32 tolerances, a wrong term does not") {
    Problem p = make_problem({4, 3, 6, 6}, 1e-5, 5);
    for (auto& v : p.x) v = double(float(v + 1e4)); // float32 data offset by 1e4
    for (auto* vec : {&p.dy, &p.gamma, &p.beta})
        for (auto& v : *vec) v = double(float(v));
    auto as_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
    const std::vector<float> x = as_float(p.x), gamma = as_float(p.gamma), beta = as_float(p.beta), dy = as_float(p.dy);
    for (const Mutant mu : {Mutant::none, Mutant::no_sum_dxhat, Mutant::unbiased_variance}) {
        CAPTURE(name(mu));
        const Grads g = mutant_backward(p, mu); // in long double from the float inputs
        const std::vector<float> dx = as_float(g.dx), dg = as_float(g.dgamma), db = as_float(g.dbeta);
        const GradcheckReport r = gradcheck<float>(x.data(), p.shape, p.l, gamma.data(), beta.data(), dy.data(), p.eps,
                                                   GivenGradients<float>{dx.data(), dg.data(), db.data()}, {});
        CHECK(r.passed == (mu == Mutant::none));
    }
}

TEST_CASE("randomized mode on a large tensor catches a single wrong channel") {
    const Shape shape{20000, 8}; // 160000 elements: above the elementwise limit
    const Layout l = collapse(shape, 1);
    std::mt19937_64 rng(4);
    std::normal_distribution<double> normal;
    std::vector<double> x(l.size()), dy(l.size()), gamma(8);
    for (auto& v : x) v = normal(rng);
    for (auto& v : dy) v = normal(rng);
    for (auto& v : gamma) v = normal(rng);
    std::vector<double> dx(l.size()), dg(8), db(8);
    backward<double>(x.data(), gamma.data(), dy.data(), l, 1e-5, dx.data(), dg.data(), db.data());

    GradcheckOptions opt;
    const GradcheckReport good = gradcheck<double>(x.data(), shape, l, gamma.data(), nullptr, dy.data(), 1e-5,
                                                   GivenGradients<double>{dx.data(), dg.data(), db.data()}, opt);
    CHECK(good.mode == "randomized");
    CHECK(good.passed);
    CHECK(good.x.checked < good.x.total);
    CHECK(good.x.checked >= 2 * 8); // first and last of every channel, at least

    for (std::int64_t o = 0; o < 20000; ++o) dx[o * 8 + 5] *= 1 + 1e-7; // channel 5 only
    const GradcheckReport bad = gradcheck<double>(x.data(), shape, l, gamma.data(), nullptr, dy.data(), 1e-5,
                                                  GivenGradients<double>{dx.data(), dg.data(), db.data()}, opt);
    CHECK_FALSE(bad.passed);
    CHECK_FALSE(bad.x.directional_passed);
    CHECK(bad.x.directional_worst_channel == 5);
    CHECK(bad.gamma.passed);
}

TEST_CASE("gradcheck is deterministic: same report for any thread count") {
    const Problem p = make_problem({40, 3, 4}, 1e-3, 11);
    GradcheckOptions one, two;
    one.threads = 1;
    two.threads = 2;
    const GradcheckReport a = gradcheck<double>(p.x.data(), p.shape, p.l, p.gamma.data(), p.beta.data(), nullptr,
                                                p.eps, {}, one);
    const GradcheckReport b = gradcheck<double>(p.x.data(), p.shape, p.l, p.gamma.data(), p.beta.data(), nullptr,
                                                p.eps, {}, two);
    CHECK(a.x.max_abs_err == b.x.max_abs_err);
    CHECK(a.x.worst_index == b.x.worst_index);
    CHECK(a.x.worst_numerical == b.x.worst_numerical);
    CHECK(a.gamma.max_abs_err == b.gamma.max_abs_err);
    CHECK(a.estimated_method_error == b.estimated_method_error);
    CHECK(a.dy_draws == 3);
    CHECK(a.passed);
}

TEST_CASE("the complex step agrees with Richardson-extrapolated central differences") {
    const Problem p = make_problem({32, 4}, 1e-5, 12);
    const GradcheckReport r = gradcheck<double>(p.x.data(), p.shape, p.l, p.gamma.data(), p.beta.data(),
                                                p.dy.data(), p.eps, {}, {});
    CHECK(r.crosscheck_elements >= 3);
    CHECK(r.estimated_method_error < 1e-18);
}
