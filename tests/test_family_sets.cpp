// Instance and group norm (family_sets.cpp) against independent references: the committed
// mpmath golden cases (scripts/golden.py), a naive long-double implementation
// (naive_family.hpp) on fresh random and hard cases, and known relations: the same bits
// for any thread count, NHWC against NCHW, G = C against instance norm's reference.
// Calls the family's kernels directly (lib/src/family.hpp), as bnorm/family.hpp's
// forward and backward do after their checks.
#include "helpers.hpp"
#include "naive_family.hpp"

#include "bnorm/error.hpp"
#include "bnorm/family.hpp"
#include "../lib/src/channel_groups.hpp"
#include "../lib/src/family.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <random>

using namespace bnorm;
using namespace bnorm::test;

namespace {

constexpr double kSentinel = 8; // outputs are prefilled with it: they must be assigned

template <class T> struct SetOutputs {
    std::vector<T> y, mean, invstd, dx, dgamma, dbeta;
};

template <class T> const T* or_null(const std::vector<T>& v) { return v.empty() ? nullptr : v.data(); }

/// forward_sets and backward_sets on one problem, every output prefilled with kSentinel.
template <class T>
SetOutputs<T> run_sets(const std::vector<T>& x, const std::vector<T>& gamma, const std::vector<T>& beta,
                       const std::vector<T>& dy, const NormProblem& p, double eps, int threads = 0) {
    const auto n = std::size_t(p.size()), s = std::size_t(p.sets), c = std::size_t(p.params);
    const T k = T(kSentinel);
    SetOutputs<T> r{std::vector<T>(n, k), std::vector<T>(s, k), std::vector<T>(s, k),
                    std::vector<T>(n, k), std::vector<T>(c, k), std::vector<T>(c, k)};
    family::forward_sets<T>(x.data(), or_null(gamma), or_null(beta), p, eps, r.y.data(), r.mean.data(),
                            r.invstd.data(), threads);
    family::backward_sets<T>(x.data(), or_null(gamma), dy.data(), p, eps, r.dx.data(), r.dgamma.data(),
                             r.dbeta.data(), threads);
    return r;
}

template <class T> std::vector<double> widen(const std::vector<T>& v) { return {v.begin(), v.end()}; }

/// The worst error in eps per output name and dtype, printed at the end of a test case.
struct Worst {
    std::map<std::string, std::pair<double, std::string>> of;
    void update(const std::string& key, double e, const std::string& where) {
        auto& w = of[key];
        if (e >= w.first) w = {e, where};
    }
    std::string report() const {
        std::string s;
        for (const auto& [k, w] : of) s += fmt::format("  {:16} {:.3f} eps ({})\n", k, w.first, w.second);
        return s;
    }
};

/// Every output against the reference, normwise: within tol eps(T).
template <class T>
void check_against(const SetOutputs<T>& got, const NaiveSets& want, const std::string& name, double tol = 4,
                   Worst* worst = nullptr) {
    const std::pair<const char*, std::pair<const std::vector<T>*, const std::vector<double>*>> outs[] = {
        {"y", {&got.y, &want.y}},         {"mean", {&got.mean, &want.mean}},   {"invstd", {&got.invstd, &want.invstd}},
        {"dx", {&got.dx, &want.dx}},      {"dgamma", {&got.dgamma, &want.dgamma}}, {"dbeta", {&got.dbeta, &want.dbeta}}};
    for (const auto& [out, pair] : outs) {
        const double e = eps_error<T>(*pair.first, *pair.second);
        const std::string output = out;
        CAPTURE(name);
        CAPTURE(output);
        CHECK(e <= tol);
        if (worst) worst->update(fmt::format("{} {}", out, sizeof(T) == 4 ? "float32" : "float64"), e, name);
    }
}

std::string describe(const Shape& shape, int axis, std::int64_t groups, double eps, const char* dtype,
                     const char* what = "") {
    return fmt::format("{}_shape{}_axis{}_g{}_eps{}_{}{}", groups ? "group" : "instance", fmt::join(shape, "x"), axis,
                       groups, eps, dtype, what);
}

NormProblem problem(const Shape& shape, int axis, std::int64_t groups) {
    return check_norm_problem(shape, groups ? Norm::group : Norm::instance, axis, groups, "x");
}

/// A random problem: x = offset + spread·N(0, 1) per (sample, channel) offset jitter, dy,
/// γ, β N(0, 1) unless the caller changes them.
template <class T> struct Case {
    Shape shape;
    int axis;
    std::int64_t groups;
    double eps;
    std::vector<T> x, gamma, beta, dy;
    std::string name;

    Case(std::mt19937_64& rng, Shape s, int a, std::int64_t g, double e, double offset = 0, double spread = 1,
         const char* what = "")
        : shape(std::move(s)), axis(a), groups(g), eps(e) {
        std::normal_distribution<double> normal;
        const NormProblem p = problem(shape, axis, groups);
        x.resize(std::size_t(p.size())), dy.resize(x.size());
        gamma.resize(std::size_t(p.channels)), beta.resize(gamma.size());
        for (auto& v : x) v = T(offset + spread * normal(rng));
        for (auto& v : dy) v = T(normal(rng));
        for (auto& v : gamma) v = T(normal(rng));
        for (auto& v : beta) v = T(normal(rng));
        name = describe(shape, axis, groups, eps, sizeof(T) == 4 ? "f32" : "f64", what);
    }
    NormProblem p() const { return problem(shape, axis, groups); }
    SetOutputs<T> run(int threads = 0) const { return run_sets(x, gamma, beta, dy, p(), eps, threads); }
    NaiveSets naive() const {
        return naive_sets(widen(x), shape, axis, groups, widen(gamma), widen(beta), widen(dy), eps);
    }
};

// ---- the golden cases -------------------------------------------------------------------

template <class T>
void golden_case(const std::filesystem::path& dir, const nlohmann::json& meta, Worst& worst) {
    auto load = [&](const std::string& name) { return load_npy((dir / (name + ".npy")).string()); };
    const Array x = load("x"), gamma = load("gamma"), beta = load("beta"), dy = load("dy");
    REQUIRE(x.dtype() == dtype_of<T>());
    const std::string name = meta["name"].get<std::string>();
    const std::int64_t groups = meta["groups"].is_number() ? meta["groups"].get<std::int64_t>() : 0;
    const NormProblem p = problem(x.shape(), meta["axis"].get<int>(), meta["norm"] == "group" ? groups : 0);
    const double eps = std::stod(meta["eps"].get<std::string>());
    const auto vec = [](const Array& a) { return std::vector<T>(a.data<T>(), a.data<T>() + a.size()); };
    const SetOutputs<T> got = run_sets(vec(x), vec(gamma), vec(beta), vec(dy), p, eps);
    NaiveSets want;
    want.y = to_doubles(load("y")), want.mean = to_doubles(load("mean")), want.invstd = to_doubles(load("invstd"));
    want.dx = to_doubles(load("dx")), want.dgamma = to_doubles(load("dgamma")), want.dbeta = to_doubles(load("dbeta"));
    check_against(got, want, name, 4, &worst);
}

} // namespace

TEST_CASE("family sets: the golden instance and group cases within 4 eps of mpmath") {
    const std::filesystem::path root = data_dir() + "/golden/family";
    std::vector<std::filesystem::path> dirs;
    for (const auto& e : std::filesystem::directory_iterator(root)) {
        const std::string n = e.path().filename().string();
        if ((n.rfind("instance_", 0) == 0 || n.rfind("group_", 0) == 0) && std::filesystem::exists(e.path() / "case.json"))
            dirs.push_back(e.path());
    }
    std::sort(dirs.begin(), dirs.end());
    REQUIRE(dirs.size() >= 40);
    Worst worst;
    for (const auto& dir : dirs) {
        const auto meta = nlohmann::json::parse(slurp((dir / "case.json").string()));
        if (meta["dtype"] == "float32") golden_case<float>(dir, meta, worst);
        else golden_case<double>(dir, meta, worst);
    }
    MESSAGE(fmt::format("golden instance/group ({} cases), worst per output:\n{}", dirs.size(), worst.report()));
}

namespace {

/// Random shapes (rank 2 to 5), channel axis 1 or last, G a random divisor of C.
template <class T> void random_against_naive(std::uint64_t seed, Worst& worst) {
    std::mt19937_64 rng(seed);
    const double eps_choices[] = {1e-5, 1e-3, 1e-8, 0.1};
    for (int trial = 0; trial < 80; ++trial) {
        const int rank = 2 + int(rng() % 4);
        Shape shape(static_cast<std::size_t>(rank));
        for (auto& d : shape) d = 1 + std::int64_t(rng() % 6);
        const int axis = rank == 2 || rng() % 2 ? 1 : -1;
        const std::size_t a = std::size_t(axis < 0 ? rank - 1 : 1);
        std::vector<std::int64_t> divisors;
        for (std::int64_t g = 1; g <= shape[a]; ++g)
            if (shape[a] % g == 0) divisors.push_back(g);
        const std::int64_t groups = rng() % 3 == 0 ? 0 : divisors[rng() % divisors.size()];
        std::int64_t per_set = 1;
        for (std::size_t d = 1; d < shape.size(); ++d)
            if (d != a) per_set *= shape[d];
        // m ≥ 3: with m = 2 and a small eps dx cancels to eps/var of its terms, beyond the
        // naive reference (the golden cases have them); a dimension beside the channel axis
        if (per_set * (groups ? shape[a] / groups : 1) < 3)
            axis == 1 ? shape.push_back(3) : void(shape.insert(shape.begin() + 1, 3));
        const Case<T> c(rng, shape, axis, groups, eps_choices[rng() % 4], double(rng() % 3), 1 + double(rng() % 4));
        check_against(c.run(), c.naive(), c.name, 4, &worst);
    }
}

} // namespace

TEST_CASE("family sets: random shapes, axes, groups and eps against the naive reference") {
    Worst worst;
    random_against_naive<double>(11, worst);
    random_against_naive<float>(12, worst);
    MESSAGE("random cases, worst per output:\n" << worst.report());
}

TEST_CASE("family sets: the hard classes against the naive reference") {
    std::mt19937_64 rng(13);
    Worst worst;
    const auto both = [&](auto tag, Shape shape, int axis, std::int64_t groups, double eps, double offset,
                          double spread, const char* what, auto&& change) {
        using T = decltype(tag);
        Case<T> c(rng, shape, axis, groups, eps, offset, spread, what);
        change(c);
        check_against(c.run(), c.naive(), c.name, 4, &worst);
    };
    const auto none = [](auto&) {};
    for (std::int64_t g : {0, 1, 2, 4}) {
        // offset 1e6, spread 1e-3, each (sample, channel) with an offset of its own
        both(0.0, Shape{3, 4, 5, 7}, 1, g, 1e-8, 1e6, 1e-3, "_offset1e6", [&](Case<double>& c) {
            std::uniform_real_distribution<double> u(-1, 1);
            for (std::size_t i = 0; i < c.x.size(); i += 35) {
                const double shift = 1e-3 * u(rng);
                for (std::size_t k = i; k < i + 35; ++k) c.x[k] += shift;
            }
        });
        both(0.0, Shape{3, 5, 7, 4}, -1, g, 1e-8, 1e6, 1e-3, "_offset1e6_nhwc", none);
        both(0.0f, Shape{3, 4, 6, 6}, 1, g, 1e-5, 1e3, 1, "_offset1e3", none);
        both(0.0f, Shape{3, 6, 6, 4}, -1, g, 1e-5, 1e3, 1, "_offset1e3_nhwc", none);
        // a constant set (eps > 0): x̂ = 0, y = β, dx = −invstd·mean(dx̂)·... with var = 0
        both(0.0, Shape{2, 4, 3, 3}, 1, g, 1e-3, 0, 1, "_const", [](Case<double>& c) {
            std::fill(c.x.begin(), c.x.begin() + 36, 2.5); // the first sample's first four channels
        });
        both(0.0f, Shape{2, 4, 3, 3}, 1, g, 1e-5, 0, 1, "_const", [](Case<float>& c) {
            std::fill(c.x.begin(), c.x.begin() + 36, 2.5f);
        });
        // heavy tails
        both(0.0, Shape{2, 4, 8, 8}, 1, g, 1e-5, 0, 1, "_cauchy", [&](Case<double>& c) {
            std::cauchy_distribution<double> cauchy;
            for (auto& v : c.x) v = cauchy(rng);
            for (auto& v : c.dy) v = cauchy(rng);
        });
        both(0.0f, Shape{2, 4, 8, 8}, 1, g, 1e-5, 0, 1, "_cauchy", [&](Case<float>& c) {
            std::cauchy_distribution<double> cauchy;
            for (auto& v : c.x) v = float(cauchy(rng));
        });
        // dy nearly linear in x within each set: dx cancels to 1e-5 of its terms (float32)
        both(0.0f, Shape{2, 4, 6, 6}, 1, g, 1e-8, 0, 10, "_cancel1e-5", [&](Case<float>& c) {
            std::normal_distribution<double> normal;
            for (std::size_t i = 0; i < c.x.size(); ++i) c.dy[i] = float(0.5 * c.x[i] + 1e-5 * normal(rng));
        });
        // the same for group norm's sets: dx̂ = γ_c·dy nearly linear in x across the channels
        both(0.0f, Shape{2, 4, 6, 6}, 1, g, 1e-8, 0, 10, "_cancel1e-5_gamma", [&](Case<float>& c) {
            std::normal_distribution<double> normal;
            for (std::size_t i = 0; i < c.x.size(); ++i)
                c.dy[i] = float((0.5 * c.x[i] + 1e-5 * normal(rng)) / c.gamma[i / 36 % 4]);
        });
        // (float64 cancelling beyond the naive reference's 1e-19: the golden cases
        // *_f64_scale10_cancel1e-10, γ·dy = a + b·x̂ per set, against mpmath)
    }
    // two elements per set: instance over (N, C, 2), group over (N, C, 1) with 2 channels a group
    // (float64 with eps ≫ 1e-5: for two values dx cancels to eps/(var + eps) of its terms,
    // beyond the naive reference's 1e-19; the golden cases have the small eps)
    both(0.0, Shape{4, 6, 2}, 1, 0, 0.5, 0, 1, "_two", none);
    both(0.0f, Shape{4, 6, 2}, 1, 0, 1e-5, 0, 1, "_two", none);
    both(0.0, Shape{4, 6, 1}, 1, 3, 0.5, 0, 1, "_two", none);
    both(0.0f, Shape{4, 6}, 1, 3, 1e-3, 0, 1, "_two", none);
    MESSAGE("hard classes, worst per output:\n" << worst.report());
}

TEST_CASE("family sets: G = 1 and G = C against the naive reference (G = C is instance norm's sets)") {
    std::mt19937_64 rng(14);
    for (const int axis : {1, -1}) {
        const Shape shape = axis == 1 ? Shape{3, 6, 5, 4} : Shape{3, 5, 4, 6};
        for (const std::int64_t g : {std::int64_t{1}, std::int64_t{6}}) {
            const Case<double> c(rng, shape, axis, g, 1e-5, 1, 2);
            check_against(c.run(), c.naive(), c.name);
            // G = C: the instance reference's sets
            if (g == 6)
                check_against(c.run(), naive_sets(widen(c.x), shape, axis, 0, widen(c.gamma), widen(c.beta),
                                                  widen(c.dy), c.eps),
                              c.name + "_vs_instance");
        }
    }
}

TEST_CASE("family sets: gamma_c = 0 channels, and absent gamma and beta") {
    std::mt19937_64 rng(15);
    for (const std::int64_t g : {0, 2, 3}) {
        Case<double> c(rng, Shape{2, 6, 4, 5}, 1, g, 1e-5, 1, 1, "_gamma0");
        c.gamma[1] = 0, c.gamma[4] = 0;
        const SetOutputs<double> r = c.run();
        check_against(r, c.naive(), c.name);
        if (g) { // group: dx of a γ_c = 0 channel is not 0 (its set's other channels move the statistics)
            double biggest = 0;
            for (std::size_t k = 20; k < 40; ++k) biggest = std::max(biggest, std::abs(r.dx[k]));
            CHECK(biggest > 1e-3);
        }
        Case<float> f(rng, Shape{2, 6, 4, 5}, 1, g, 1e-5, 1, 1, "_gamma0");
        f.gamma[0] = 0;
        check_against(f.run(), f.naive(), f.name);
        // no γ, β: γ = 1, β = 0
        c.gamma.clear(), c.beta.clear();
        check_against(c.run(), c.naive(), c.name + "_nogamma");
    }
}

TEST_CASE("family sets: the same bits for 1, 2 and all threads, in pieces too") {
    std::mt19937_64 rng(16);
    for (const std::int64_t g : {0, 8}) {
        for (const int axis : {1, -1}) {
            const Shape shape = axis == 1 ? Shape{16, 32, 24, 24} : Shape{16, 24, 24, 32}; // 294912 values
            const Case<float> f(rng, shape, axis, g, 1e-5, 3, 2);
            const Case<double> d(rng, shape, axis, g, 1e-5, 3, 2);
            CAPTURE(f.name);
            const SetOutputs<float> f1 = f.run(1), f2 = f.run(2), f0 = f.run(0);
            const SetOutputs<double> d1 = d.run(1), d2 = d.run(2), d0 = d.run(0);
            for (const auto* o : {&f2, &f0})
                CHECK((o->y == f1.y && o->mean == f1.mean && o->invstd == f1.invstd && o->dx == f1.dx &&
                       o->dgamma == f1.dgamma && o->dbeta == f1.dbeta));
            for (const auto* o : {&d2, &d0})
                CHECK((o->y == d1.y && o->mean == d1.mean && o->invstd == d1.invstd && o->dx == d1.dx &&
                       o->dgamma == d1.dgamma && o->dbeta == d1.dbeta));
            check_against(f1, f.naive(), f.name);
            check_against(d1, d.naive(), d.name);
            // the pieces of a tensor beyond the cache (here: beyond 64 KiB), on the threads,
            // cut for an L2 of 512 KiB and of 64 KiB (pieces of 128 and 16 KiB), the same bits
            // as the whole tensor's
            detail::set_group_threshold(1 << 16);
            detail::set_l2_bytes(512 << 10);
            const SetOutputs<float> p1 = f.run(1), p2 = f.run(2);
            const SetOutputs<double> q1 = d.run(1), q0 = d.run(0);
            detail::set_l2_bytes(64 << 10);
            const SetOutputs<float> s2 = f.run(2);
            const SetOutputs<double> t1 = d.run(1);
            detail::set_l2_bytes(0);
            detail::set_group_threshold(0);
            for (const auto* o : {&p1, &p2, &s2})
                CHECK((o->y == f1.y && o->dx == f1.dx && o->dgamma == f1.dgamma && o->dbeta == f1.dbeta &&
                       o->mean == f1.mean && o->invstd == f1.invstd));
            for (const auto* o : {&q1, &q0, &t1})
                CHECK((o->y == d1.y && o->dx == d1.dx && o->dgamma == d1.dgamma && o->dbeta == d1.dbeta &&
                       o->mean == d1.mean && o->invstd == d1.invstd));
            check_against(p1, f.naive(), f.name + "_pieces");
            check_against(q1, d.naive(), d.name + "_pieces");
        }
    }
}

TEST_CASE("family sets: one sample's channels in several blocks of pass A, summed apart") {
    // (1, 48, 128, 128) float32 is 6 MiB of x and dy: below the pieces' threshold, one
    // pass over the tensor, whose pass A takes two blocks of whole channels
    // (certified_moments.cpp, disjoint_moments), float32 by the plain kernels and float64
    // (12 MiB, three blocks) by the biased ones
    std::mt19937_64 rng(18);
    const Case<float> f(rng, Shape{1, 48, 128, 128}, 1, 0, 1e-5, 3, 2);
    const Case<double> d(rng, Shape{1, 48, 128, 128}, 1, 0, 1e-5, 3, 2);
    const Case<float> g(rng, Shape{1, 48, 128, 128}, 1, 16, 1e-5, 3, 2);
    const SetOutputs<float> f1 = f.run(1), f2 = f.run(2), g1 = g.run(1), g2 = g.run(2);
    const SetOutputs<double> d1 = d.run(1), d2 = d.run(2);
    CHECK((f2.y == f1.y && f2.mean == f1.mean && f2.dx == f1.dx && f2.dgamma == f1.dgamma && f2.dbeta == f1.dbeta));
    CHECK((g2.y == g1.y && g2.mean == g1.mean && g2.dx == g1.dx && g2.dgamma == g1.dgamma && g2.dbeta == g1.dbeta));
    CHECK((d2.y == d1.y && d2.invstd == d1.invstd && d2.dx == d1.dx && d2.dgamma == d1.dgamma));
    check_against(f1, f.naive(), f.name);
    check_against(g1, g.naive(), g.name);
    check_against(d1, d.naive(), d.name);
}

namespace {
/// (N, C, H, W) -> (N, H, W, C), for x or dy.
template <class T> std::vector<T> to_nhwc(const std::vector<T>& v, std::int64_t N, std::int64_t C, std::int64_t HW) {
    std::vector<T> out(v.size());
    for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t k = 0; k < HW; ++k) out[std::size_t((n * HW + k) * C + c)] = v[std::size_t((n * C + c) * HW + k)];
    return out;
}
} // namespace

TEST_CASE("family sets: NHWC (axis -1) gives the NCHW results, permuted") {
    std::mt19937_64 rng(17);
    for (const std::int64_t g : {0, 1, 3, 6}) {
        const Case<double> c(rng, Shape{3, 6, 4, 5}, 1, g, 1e-5, 2, 3);
        const SetOutputs<double> nchw = c.run();
        Case<double> last = c;
        last.shape = {3, 4, 5, 6}, last.axis = -1;
        last.x = to_nhwc(c.x, 3, 6, 20), last.dy = to_nhwc(c.dy, 3, 6, 20);
        const SetOutputs<double> nhwc = last.run();
        CAPTURE(c.name);
        CHECK(eps_error<double>(nhwc.y, widen(to_nhwc(nchw.y, 3, 6, 20))) <= 2);
        CHECK(eps_error<double>(nhwc.dx, widen(to_nhwc(nchw.dx, 3, 6, 20))) <= 2);
        CHECK(eps_error<double>(nhwc.mean, widen(nchw.mean)) <= 1);
        CHECK(eps_error<double>(nhwc.invstd, widen(nchw.invstd)) <= 1);
        CHECK(eps_error<double>(nhwc.dgamma, widen(nchw.dgamma)) <= 1);
        CHECK(eps_error<double>(nhwc.dbeta, widen(nchw.dbeta)) <= 1);
        check_against(nhwc, last.naive(), last.name);
    }
}

TEST_CASE("family sets: eps = 0 and a constant set is refused, naming it, before any output") {
    std::mt19937_64 rng(18);
    for (const std::int64_t g : {0, 2}) {
        for (const int axis : {1, -1}) {
            Case<double> c(rng, axis == 1 ? Shape{2, 4, 3, 3} : Shape{2, 3, 3, 4}, axis, g, 0.0);
            const NormProblem p = c.p();
            // the set (sample 1, channel 2 / group 1): channels 2 and 3 of sample 1
            for (std::size_t i = 0; i < c.x.size(); ++i) {
                const std::size_t ch = axis == 1 ? i / 9 % 4 : i % 4, n = i / 36;
                if (n == 1 && (ch == 2 || (g && ch == 3))) c.x[i] = -1.25;
            }
            std::vector<double> y(c.x.size(), kSentinel), mean(std::size_t(p.sets), kSentinel), dx(c.x.size(), kSentinel);
            const std::string want = g ? "(sample 1, group 1)" : "(sample 1, channel 2)";
            CAPTURE(c.name);
            try {
                family::forward_sets<double>(c.x.data(), c.gamma.data(), c.beta.data(), p, 0.0, y.data(), mean.data(),
                                             nullptr, 0);
                FAIL("forward did not throw");
            } catch (const InputError& e) {
                CHECK(std::string(e.what()).find(want) != std::string::npos);
            }
            try {
                family::backward_sets<double>(c.x.data(), c.gamma.data(), c.dy.data(), p, 0.0, dx.data(), nullptr,
                                              nullptr, 0);
                FAIL("backward did not throw");
            } catch (const InputError& e) {
                CHECK(std::string(e.what()).find(want) != std::string::npos);
            }
            CHECK(std::all_of(y.begin(), y.end(), [](double v) { return v == kSentinel; }));
            CHECK(std::all_of(mean.begin(), mean.end(), [](double v) { return v == kSentinel; }));
            CHECK(std::all_of(dx.begin(), dx.end(), [](double v) { return v == kSentinel; }));
            // with eps = 0 and no constant set: fine
            c.x[std::size_t(axis == 1 ? 54 : 38)] = 3;
            check_against(c.run(), c.naive(), c.name + "_eps0");
        }
    }
}

TEST_CASE("family sets: non-finite and extreme float64 data take the exact kernel per set") {
    std::mt19937_64 rng(19);
    for (const std::int64_t g : {0, 2}) {
        // extreme magnitudes: the whole tensor near 1e300, or near 1e-300
        for (const double scale : {1e300, 1e-300}) {
            Case<double> c(rng, Shape{2, 4, 3, 5}, 1, g, 0.0);
            for (auto& v : c.x) v *= scale;
            if (scale < 1)
                for (auto& v : c.dy) v *= scale; // dx = invstd·γ·dy ~ 1
            CAPTURE(scale);
            check_against(c.run(), c.naive(), c.name + "_extreme");
        }
        // a NaN in sample 0's first set: its outputs NaN, the other sets' right
        Case<double> c(rng, Shape{2, 4, 3, 5}, 1, g, 1e-5);
        c.x[3] = NAN;
        const SetOutputs<double> r = c.run();
        const NaiveSets want = c.naive();
        const std::size_t set_values = g ? 30 : 15;
        CHECK(std::isnan(r.mean[0]));
        CHECK(std::isnan(r.y[0]));
        CHECK(std::isnan(r.dx[set_values - 1]));
        CHECK(std::isnan(r.dgamma[0]));
        const std::vector<double> y_rest(r.y.begin() + 60, r.y.end()), dx_rest(r.dx.begin() + 60, r.dx.end());
        CHECK(eps_error<double>(y_rest, std::vector<double>(want.y.begin() + 60, want.y.end())) <= 4);
        CHECK(eps_error<double>(dx_rest, std::vector<double>(want.dx.begin() + 60, want.dx.end())) <= 4);
        CHECK(eps_error<double>(std::vector<double>(r.mean.begin() + 1, r.mean.end()),
                                std::vector<double>(want.mean.begin() + 1, want.mean.end())) <= 4);
    }
}

namespace {
/// dγ and dβ where the samples' shares cancel: sample 1's dy = −(sample 0's) + δ, with
/// x = ±1 in every set (eps = 0: x̂ = ±1 exactly), so that dβ_c = Σ δ and dγ_c = Σ ±δ
/// exactly (each pair dy₀ + dy₁ is exact), summed here in long double.
template <class T> void cancelling_shares(std::int64_t groups, double delta) {
    std::mt19937_64 rng(20);
    std::normal_distribution<double> normal;
    const Shape shape{2, 4, 16};
    const NormProblem p = problem(shape, 1, groups);
    std::vector<T> x(128), dy(128), gamma{1.5, -2, 0.75, 3}, beta{0, 1, 2, 3};
    for (std::size_t i = 0; i < 128; ++i) x[i] = T(i % 2 ? 1 : -1);
    for (std::size_t i = 0; i < 64; ++i) {
        dy[i] = T(1e3 * normal(rng));
        dy[i + 64] = T(-double(dy[i]) + delta * normal(rng));
    }
    const SetOutputs<T> r = run_sets(x, gamma, beta, dy, p, 0.0);
    std::vector<double> dgamma(4), dbeta(4);
    for (std::size_t c = 0; c < 4; ++c) {
        long double g = 0, b = 0;
        for (std::size_t k = 0; k < 16; ++k) {
            const std::size_t i = c * 16 + k;
            const double pair = double(dy[i]) + double(dy[i + 64]); // exact (Sterbenz)
            b += pair, g += (i % 2 ? 1 : -1) * (long double)pair;
        }
        dgamma[c] = double(g), dbeta[c] = double(b);
    }
    CAPTURE(groups);
    CAPTURE(delta);
    CHECK(eps_error<T>(r.dbeta, dbeta) <= 1);
    CHECK(eps_error<T>(r.dgamma, dgamma) <= 1);
}
} // namespace

TEST_CASE("family sets: dgamma and dbeta where the samples' shares cancel") {
    for (const std::int64_t g : {0, 2})
        for (const double delta : {1e-3, 1e-6, 1e-9}) {
            cancelling_shares<double>(g, delta);
            if (delta >= 1e-3) cancelling_shares<float>(g, delta); // (float32 dy resolves 6e-5 at 1e3)
        }
}

TEST_CASE("family sets: a group whose channels' means cancel (its mean from error-free sums)") {
    // float32, channels 0 and 1 of a group: c1 = −c0 value for value, but for one value moved
    // by δ: the group's mean is exactly δ/m, far below the channels' sums' rounding bounds.
    // NCHW (a set is one channel of the engine) and NHWC (channels merged per set).
    std::mt19937_64 rng(21);
    std::normal_distribution<double> normal;
    for (const int axis : {1, -1})
        for (const double delta : {1.0, 1e-2, 1e-4}) {
            const Shape shape = axis == 1 ? Shape{2, 4, 25} : Shape{2, 25, 4};
            const NormProblem p = problem(shape, axis, 2);
            // element (n, c, k) of the NCHW order at at(n, c, k)
            const auto at = [&](std::size_t n, std::size_t c, std::size_t k) {
                return axis == 1 ? n * 100 + c * 25 + k : n * 100 + k * 4 + c;
            };
            std::vector<float> x(200), dy(200), gamma{1, 2, 3, 4}, beta{0, 0, 1, 1};
            for (std::size_t i = 0; i < 200; ++i) dy[i] = float(normal(rng));
            std::vector<double> want_mean(4);
            for (std::size_t n = 0; n < 2; ++n)
                for (std::size_t g = 0; g < 2; ++g) {
                    for (std::size_t k = 0; k < 25; ++k) {
                        x[at(n, 2 * g, k)] = float(1e3 + normal(rng));
                        x[at(n, 2 * g + 1, k)] = -x[at(n, 2 * g, k)];
                    }
                    float& moved = x[at(n, 2 * g + 1, 24)];
                    moved = float(double(moved) + delta); // exact in float32 (|moved| ~ 1e3, δ ≥ 1e-4)
                    want_mean[n * 2 + g] = (double(moved) + double(x[at(n, 2 * g, 24)])) / 50; // the pair left
                }
            const SetOutputs<float> r = run_sets(x, gamma, beta, dy, p, 1e-5);
            CAPTURE(axis);
            CAPTURE(delta);
            CHECK(eps_error<float>(r.mean, want_mean) <= 1);
            std::vector<double> wx(x.begin(), x.end()), wd(dy.begin(), dy.end());
            check_against(r, naive_sets(wx, shape, axis, 2, {1, 2, 3, 4}, {0, 0, 1, 1}, wd, 1e-5), "cancelling_means");
        }
}

TEST_CASE("family sets: backward matches central finite differences of f = sum(dy * y)") {
    // The gradients of the forward pass itself, independently of any formula for them.
    std::mt19937_64 rng(22);
    for (const std::int64_t g : {0, 1, 2}) {
        for (const int axis : {1, -1}) {
            Case<double> c(rng, axis == 1 ? Shape{2, 4, 3} : Shape{2, 3, 4}, axis, g, 1e-3, 0.5, 1);
            c.gamma[2] = 0; // dx of a γ_c = 0 channel is not 0 in a group
            const NormProblem p = c.p();
            const auto f = [&]() {
                std::vector<double> y(c.x.size());
                family::forward_sets<double>(c.x.data(), c.gamma.data(), c.beta.data(), p, c.eps, y.data(), nullptr,
                                             nullptr, 1);
                long double s = 0;
                for (std::size_t i = 0; i < y.size(); ++i) s += (long double)c.dy[i] * y[i];
                return double(s);
            };
            const auto central = [&](double& v) {
                const double keep = v, h = 1e-6;
                v = keep + h;
                const double up = f();
                v = keep - h;
                const double down = f();
                v = keep;
                return (up - down) / (2 * h);
            };
            const SetOutputs<double> r = c.run();
            CAPTURE(c.name);
            for (std::size_t i = 0; i < c.x.size(); ++i) CHECK(r.dx[i] == doctest::Approx(central(c.x[i])).epsilon(1e-6));
            for (std::size_t k = 0; k < c.gamma.size(); ++k) {
                CHECK(r.dgamma[k] == doctest::Approx(central(c.gamma[k])).epsilon(1e-6));
                CHECK(r.dbeta[k] == doctest::Approx(central(c.beta[k])).epsilon(1e-6));
            }
        }
    }
}
