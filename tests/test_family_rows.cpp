// Layer norm and RMS norm (family::forward_rows, backward_rows): against the committed
// mpmath golden cases (tests/data/golden/family/{layer,rms}_*, scripts/golden.py), against
// the naive __float128 reference of naive_rows.hpp on fresh random data of every hard
// class, bit identity over thread counts, the defaults of γ and β, and the refusal of a
// zero variance with eps = 0.
#include "helpers.hpp"
#include "naive_rows.hpp"

#include "bnorm/error.hpp"
#include "bnorm/family.hpp"
#include "../lib/src/family.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace bnorm::test {
namespace {

constexpr double kSentinel = 8; // outputs are prefilled with it: they must be assigned
constexpr double kMaxEps = 4;   // the promise: every output within 4 eps normwise

template <class T> struct RowOutputs {
    std::vector<T> y, mean, invstd, dx, dgamma, dbeta;
};

template <class T> const T* or_null(const std::vector<T>& v) { return v.empty() ? nullptr : v.data(); }
template <class T> T* or_null(std::vector<T>& v) { return v.empty() ? nullptr : v.data(); }

/// forward_rows and backward_rows on one problem, every output prefilled with kSentinel
/// (RMS: no mean, no dβ). dy empty: forward only.
template <class T>
RowOutputs<T> run_rows(const NormProblem& p, const std::vector<T>& x, const std::vector<T>& gamma,
                       const std::vector<T>& beta, const std::vector<T>& dy, double eps, int threads = 0) {
    const bool rms = p.norm == Norm::rms;
    const auto n = std::size_t(p.size()), R = std::size_t(p.sets), D = std::size_t(p.per_set);
    RowOutputs<T> o;
    o.y.assign(n, T(kSentinel)), o.invstd.assign(R, T(kSentinel));
    if (!rms) o.mean.assign(R, T(kSentinel));
    family::forward_rows<T>(x.data(), or_null(gamma), rms ? nullptr : or_null(beta), p, eps, o.y.data(),
                            or_null(o.mean), o.invstd.data(), threads);
    if (dy.empty()) return o;
    o.dx.assign(n, T(kSentinel)), o.dgamma.assign(D, T(kSentinel));
    if (!rms) o.dbeta.assign(D, T(kSentinel));
    family::backward_rows<T>(x.data(), or_null(gamma), dy.data(), p, eps, o.dx.data(), o.dgamma.data(),
                             or_null(o.dbeta), threads);
    return o;
}

/// Worst error in eps per output and dtype, printed at the end of the run (by the map's
/// own owner, which outlives every use).
struct Worst {
    std::map<std::string, double> m;
    ~Worst() {
        for (const auto& [k, v] : m) fmt::print("family rows: worst {} = {:.3f} eps\n", k, v);
    }
};
std::map<std::string, double>& worst() {
    static Worst w;
    return w.m;
}

/// Checks one output against the exact values (rounded to double), normwise.
template <class T>
void check_output(const std::string& what, const std::string& name, const std::vector<T>& got,
                  const std::vector<double>& want) {
    const double e = eps_error<T>(got, want);
    const std::string key = fmt::format("{} {}", what, sizeof(T) == 4 ? "f32" : "f64");
    worst()[key] = std::max(worst()[key], e);
    CHECK_MESSAGE(e <= kMaxEps, name << ": " << what << " off by " << e << " eps");
}

template <class T>
void check_against_naive(const NormProblem& p, const std::vector<T>& x, const std::vector<T>& gamma,
                         const std::vector<T>& beta, const std::vector<T>& dy, double eps, const std::string& name,
                         int threads = 0) {
    const bool rms = p.norm == Norm::rms;
    const RowOutputs<T> got = run_rows(p, x, gamma, beta, dy, eps, threads);
    const NaiveRowsResult want = naive_rows(x, gamma, rms ? std::vector<T>{} : beta, dy, p.sets, p.per_set, eps, rms);
    check_output("y", name, got.y, want.y);
    if (!rms) check_output("mean", name, got.mean, want.mean);
    check_output("invstd", name, got.invstd, want.invstd);
    if (dy.empty()) return;
    check_output("dx", name, got.dx, want.dx);
    check_output("dgamma", name, got.dgamma, want.dgamma);
    if (!rms) check_output("dbeta", name, got.dbeta, want.dbeta);
}

// ---- the committed golden cases (mpmath) ---------------------------------------------------

template <class T> std::vector<T> values_of(const Array& a) {
    REQUIRE(a.dtype() == (sizeof(T) == 4 ? DType::f32 : DType::f64));
    return {a.data<T>(), a.data<T>() + a.size()};
}

template <class T> void golden_case(const std::filesystem::path& dir) {
    const auto j = nlohmann::json::parse(slurp((dir / "case.json").string()));
    const std::string name = j["name"];
    const Norm norm = parse_norm(j["norm"].get<std::string>());
    const std::vector<std::int64_t> shape = j["shape"].get<std::vector<std::int64_t>>();
    const double eps = std::stod(j["eps"].get<std::string>());
    const NormProblem p = check_norm_problem(shape, norm, j["axis"].get<int>(), 0, name);
    const auto inputs = j["inputs"].get<std::vector<std::string>>();
    auto input = [&](const std::string& k) {
        const bool has = std::find(inputs.begin(), inputs.end(), k) != inputs.end();
        return has ? values_of<T>(load_npy((dir / (k + ".npy")).string())) : std::vector<T>{};
    };
    auto expected = [&](const std::string& k) { return to_doubles(load_npy((dir / (k + ".npy")).string())); };
    const RowOutputs<T> got = run_rows(p, input("x"), input("gamma"), input("beta"), input("dy"), eps);
    check_output("y", name, got.y, expected("y"));
    if (norm == Norm::layer) check_output("mean", name, got.mean, expected("mean"));
    check_output("invstd", name, got.invstd, expected("invstd"));
    check_output("dx", name, got.dx, expected("dx"));
    check_output("dgamma", name, got.dgamma, expected("dgamma"));
    if (norm == Norm::layer) check_output("dbeta", name, got.dbeta, expected("dbeta"));
}

TEST_CASE("family rows: the committed golden cases (mpmath), every output within 4 eps") {
    const std::filesystem::path root = std::filesystem::path(data_dir()) / "golden" / "family";
    int cases = 0;
    for (const auto& entry : std::filesystem::directory_iterator(root)) {
        const std::string dir = entry.path().filename().string();
        if (dir.rfind("layer_", 0) != 0 && dir.rfind("rms_", 0) != 0) continue;
        CAPTURE(dir);
        if (dir.find("_f32") != std::string::npos) golden_case<float>(entry.path());
        else golden_case<double>(entry.path());
        ++cases;
    }
    CHECK(cases >= 40);
}

// ---- fresh random cases against the naive reference ----------------------------------------

enum class Kind { normal, offset, constant_rows, cauchy, tiny, cancel, extreme_big, extreme_small, cancel_scaled, cancel_columns };

/// x, γ, β, dy of one class: rows (R, D) from a seed that depends on nothing else.
template <class T> struct Data {
    std::vector<T> x, gamma, beta, dy;
};
template <class T> Data<T> make_data(std::int64_t R, std::int64_t D, Kind kind, unsigned seed, double offset = 0) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    std::cauchy_distribution<double> cauchy;
    Data<T> d;
    const auto n = std::size_t(R * D);
    d.x.resize(n), d.dy.resize(n), d.gamma.resize(std::size_t(D)), d.beta.resize(std::size_t(D));
    for (auto& g : d.gamma) g = T(1 + 0.5 * normal(rng));
    for (auto& b : d.beta) b = T(normal(rng));
    for (std::int64_t r = 0; r < R; ++r) {
        const double a = normal(rng), b = normal(rng); // dy = a + b·x per row (cancel)
        for (std::int64_t i = 0; i < D; ++i) {
            const std::size_t k = std::size_t(r * D + i);
            switch (kind) {
            case Kind::normal: d.x[k] = T(normal(rng) * 3 + 1); break;
            case Kind::offset: d.x[k] = T(offset + 1e-3 * normal(rng)); break;
            case Kind::constant_rows: d.x[k] = T(r % 2 ? 2.5 : 2.5 + normal(rng)); break;
            case Kind::cauchy: d.x[k] = T(cauchy(rng)); break;
            case Kind::tiny: d.x[k] = T(1e-6 * normal(rng)); break;
            case Kind::cancel:
            case Kind::cancel_scaled:
            case Kind::cancel_columns: d.x[k] = T(normal(rng)); break;
            case Kind::extreme_big: d.x[k] = T(1e300 * normal(rng)); break;
            case Kind::extreme_small: d.x[k] = T(1e-300 * normal(rng)); break;
            }
            d.dy[k] = kind == Kind::cancel ? T(a + b * double(d.x[k])) : T(normal(rng));
            // γ·dy = b·x up to dy's rounding: RMS's two terms cancel (and layer's, to eps/(var + eps))
            if (kind == Kind::cancel_scaled) d.dy[k] = T(b * double(d.x[k]) / double(d.gamma[std::size_t(i)]));
            if (kind == Kind::extreme_big) d.dy[k] = T(double(d.dy[k]) * 1e200);
        }
    }
    if (kind == Kind::cancel_columns) {
        // rows in pairs of the same x and opposite dy, and the last row's dy 1e-12: dγ and dβ
        // are 1e-12 of their terms, far below what plain sums of the terms keep
        for (std::int64_t r = 1; r < R; r += 2)
            for (std::int64_t i = 0; i < D; ++i) {
                const std::size_t k = std::size_t(r * D + i);
                d.x[k] = d.x[k - std::size_t(D)], d.dy[k] = -d.dy[k - std::size_t(D)];
            }
        for (std::int64_t i = 0; i < D; ++i) d.dy[std::size_t((R - 1) * D + i)] *= T(1e-12);
    }
    return d;
}

template <class T>
void fresh_case(Norm norm, std::vector<std::int64_t> shape, int axis, Kind kind, double eps, unsigned seed,
                double offset = 0, bool defaults = false) {
    const std::string name = fmt::format("{}_shape{}_axis{}_kind{}_eps{}_seed{}_{}{}", norm_name(norm),
                                         fmt::join(shape, "x"), axis, int(kind), eps, seed,
                                         sizeof(T) == 4 ? "f32" : "f64", defaults ? "_defaults" : "");
    CAPTURE(name);
    const NormProblem p = check_norm_problem(shape, norm, axis, 0, name);
    Data<T> d = make_data<T>(p.sets, p.per_set, kind, seed, offset);
    if (defaults) d.gamma.clear(), d.beta.clear();
    check_against_naive(p, d.x, d.gamma, d.beta, d.dy, eps, name);
}

TEST_CASE("family rows: fresh random cases of every hard class against the naive reference") {
    for (Norm norm : {Norm::layer, Norm::rms}) {
        unsigned seed = 1;
        for (bool defaults : {false, true}) {
            fresh_case<float>(norm, {7, 33}, -1, Kind::normal, 1e-5, seed++, 0, defaults);
            fresh_case<double>(norm, {7, 33}, -1, Kind::normal, 1e-5, seed++, 0, defaults);
        }
        fresh_case<float>(norm, {64, 1024}, -1, Kind::normal, 1e-5, seed++);
        fresh_case<double>(norm, {5, 3000}, -1, Kind::normal, 1e-5, seed++);
        fresh_case<double>(norm, {9, 64}, -1, Kind::offset, 1e-5, seed++, 1e6);  // offset 1e6, spread 1e-3
        fresh_case<float>(norm, {9, 64}, -1, Kind::offset, 1e-5, seed++, 1e3);   // float32 offset 1e3
        fresh_case<double>(norm, {9, 64}, -1, Kind::offset, 0, seed++, 1e6);     // eps = 0
        fresh_case<float>(norm, {6, 16}, -1, Kind::constant_rows, 1e-5, seed++); // constant rows, eps > 0
        fresh_case<double>(norm, {6, 16}, -1, Kind::constant_rows, 1e-5, seed++);
        fresh_case<float>(norm, {50, 2}, -1, Kind::normal, 1e-5, seed++);        // D = 2
        fresh_case<double>(norm, {50, 3}, -1, Kind::normal, 0, seed++);
        fresh_case<float>(norm, {12, 100}, -1, Kind::cauchy, 1e-5, seed++);      // heavy tails
        fresh_case<double>(norm, {12, 100}, -1, Kind::cauchy, 1e-5, seed++);
        fresh_case<float>(norm, {8, 40}, -1, Kind::tiny, 1e-5, seed++);          // eps dominates
        fresh_case<double>(norm, {8, 40}, -1, Kind::tiny, 1e-5, seed++);
        fresh_case<float>(norm, {10, 256}, -1, Kind::cancel, 1e-5, seed++);      // dy = a + b·x per row
        fresh_case<double>(norm, {10, 256}, -1, Kind::cancel, 1e-5, seed++);
        fresh_case<double>(norm, {10, 257}, -1, Kind::cancel, 0, seed++);
        fresh_case<float>(norm, {10, 256}, -1, Kind::cancel_scaled, 1e-5, seed++); // γ·dy = b·x per row
        fresh_case<double>(norm, {10, 256}, -1, Kind::cancel_scaled, 1e-5, seed++);
        fresh_case<float>(norm, {10, 99}, -1, Kind::cancel_scaled, 0, seed++);
        fresh_case<double>(norm, {10, 99}, -1, Kind::cancel_scaled, 0, seed++);
        fresh_case<float>(norm, {3, 4096}, -1, Kind::cancel, 1e-5, seed++);       // long rows
        fresh_case<double>(norm, {3, 4096}, -1, Kind::cancel, 1e-5, seed++);
        fresh_case<float>(norm, {3, 5, 7}, 1, Kind::normal, 1e-5, seed++);       // axis 1 of rank 3: D = 35
        fresh_case<double>(norm, {3, 5, 7}, 1, Kind::cancel, 1e-5, seed++);
        fresh_case<double>(norm, {2, 3, 4, 5}, 0, Kind::normal, 1e-5, seed++);   // axis 0: one row
        fresh_case<double>(norm, {6, 50}, -1, Kind::extreme_big, 1e-5, seed++);  // beyond the fast range
        fresh_case<double>(norm, {6, 50}, -1, Kind::extreme_small, 1e-5, seed++);
        fresh_case<double>(norm, {6, 50}, -1, Kind::extreme_small, 0, seed++);
    }
}

TEST_CASE("family rows: dγ and dβ that cancel over the rows (the float32 columns summed again by TwoProd)") {
    // float32 adds the columns' terms plainly under a bound it checks; here the bound
    // fails by about 2^30 and the columns must come from the error-free sums
    unsigned seed = 40;
    for (Norm norm : {Norm::layer, Norm::rms}) {
        fresh_case<float>(norm, {65, 40}, -1, Kind::cancel_columns, 1e-5, seed++);
        fresh_case<float>(norm, {9, 1031}, -1, Kind::cancel_columns, 1e-5, seed++);
        fresh_case<float>(norm, {129, 1024}, -1, Kind::cancel_columns, 1e-5, seed++); // more than a chunk and a band
        fresh_case<float>(norm, {65, 40}, -1, Kind::cancel_columns, 1e-5, seed++, 0, true); // no γ, β
        fresh_case<double>(norm, {65, 40}, -1, Kind::cancel_columns, 1e-5, seed++);
    }
}

TEST_CASE("family rows: float32 dx of 16 MiB and more is streamed, from any alignment") {
    // (2048, 2048) float32: dx is streamed (non-temporal stores), its rows begun one by one
    // up to a 32-byte boundary; D = 2051 is not streamed (rows unequally aligned)
    for (const auto& [R, D] : {std::pair<std::int64_t, std::int64_t>{2048, 2048}, {2047, 2051}}) {
        const NormProblem p = check_norm_problem(std::vector<std::int64_t>{R, D}, Norm::layer, -1, 0, "x");
        const Data<float> d = make_data<float>(R, D, Kind::normal, 17);
        const NaiveRowsResult want = naive_rows(d.x, d.gamma, d.beta, d.dy, R, D, 1e-5, false);
        for (std::size_t shift : {0, 1, 3}) { // dx that many floats past an aligned allocation
            CAPTURE(R);
            CAPTURE(D);
            CAPTURE(shift);
            std::vector<float> buffer(static_cast<std::size_t>(R * D) + 8, float(kSentinel));
            std::vector<float> dgamma(static_cast<std::size_t>(D)), dbeta(static_cast<std::size_t>(D));
            float* dx = buffer.data() + (8 - reinterpret_cast<std::uintptr_t>(buffer.data()) % 32 / 4) % 8 + shift;
            family::backward_rows<float>(d.x.data(), d.gamma.data(), d.dy.data(), p, 1e-5, dx, dgamma.data(),
                                         dbeta.data(), 2);
            check_output("dx", "streamed", std::vector<float>(dx, dx + R * D), want.dx);
            check_output("dgamma", "streamed", dgamma, want.dgamma);
            check_output("dbeta", "streamed", dbeta, want.dbeta);
        }
    }
}

/// dy of row r made so that the exact dx at position k is a tiny fraction of its terms: for
/// each of 2048 values of a neighbour's dy_j (ulp by ulp), dy_k solves dx_k = 0 (dx_k is
/// linear in dy_k) rounded to float32, and the pair that leaves the least |dx_k| is kept;
/// by the naive reference (naive_rows.hpp) alone. Returns |dx_k| over the row's largest |dx|.
double cancel_one_value(Data<float>& d, std::int64_t D, std::int64_t r, std::int64_t k, bool rms) {
    const auto dx_of = [&] {
        const auto x = d.x.begin() + r * D, dy = d.dy.begin() + r * D;
        return naive_rows(std::vector<float>(x, x + D), d.gamma, rms ? std::vector<float>{} : d.beta,
                          std::vector<float>(dy, dy + D), 1, D, 1e-5, rms)
            .dx;
    };
    float& dyk = d.dy[std::size_t(r * D + k)];
    float& dyj = d.dy[std::size_t(r * D + (k + 1) % D)];
    dyk = 1;
    const double at1 = dx_of()[std::size_t(k)];
    const auto solve = [&] { // dy_k for dx_k = 0, and the |dx_k| left
        dyk = 0;
        const double at0 = dx_of()[std::size_t(k)];
        dyk = float(-at0 / (at1 - at0));
        return std::abs(dx_of()[std::size_t(k)]);
    };
    float best_j = dyj, best_k = 0;
    double least = INFINITY;
    for (int t = 0; t < 2048; ++t, dyj = std::nextafter(dyj, INFINITY))
        if (const double v = solve(); v < least) least = v, best_j = dyj, best_k = dyk;
    dyj = best_j, dyk = best_k;
    double largest = 0;
    for (double v : dx_of()) largest = std::max(largest, std::abs(v));
    return least / largest;
}

TEST_CASE("family rows: float32 dx values far below their terms are computed again, each to 1 ulp") {
    // dx in double is off by a few 2^-53 of its terms: where dx is ~2^-35 of them, that is
    // tens of float32 ulps of dx, and the values the row's bound flags are computed again
    // in double-double. Checked value by value (the other tests are normwise): rows 0 and
    // 4 are groups of four and of one, positions 5 (eight lanes), 64 (four) and 66 (one).
    constexpr std::int64_t R = 5, D = 67;
    for (Norm norm : {Norm::layer, Norm::rms}) {
        const bool rms = norm == Norm::rms;
        const NormProblem p = check_norm_problem(std::vector<std::int64_t>{R, D}, norm, -1, 0, "x");
        Data<float> d = make_data<float>(R, D, Kind::normal, 23);
        const std::vector<std::pair<std::int64_t, std::int64_t>> at = {{0, 5}, {2, 64}, {4, 66}};
        for (const auto& [r, k] : at) {
            const double depth = cancel_one_value(d, D, r, k, rms);
            CAPTURE(depth);
            REQUIRE(depth < 0x1p-30); // deep enough that dx in double alone would be off
        }
        const RowOutputs<float> got = run_rows(p, d.x, d.gamma, d.beta, d.dy, 1e-5);
        const NaiveRowsResult want = naive_rows(d.x, d.gamma, rms ? std::vector<float>{} : d.beta, d.dy, R, D, 1e-5, rms);
        for (const auto& [r, k] : at) {
            const std::size_t i = std::size_t(r * D + k);
            const float w = float(want.dx[i]);
            const double ulp = double(std::nextafter(std::abs(w), INFINITY)) - double(std::abs(w));
            CAPTURE(norm_name(norm));
            CAPTURE(r);
            CAPTURE(k);
            CHECK_MESSAGE(std::abs(double(got.dx[i]) - want.dx[i]) <= ulp,
                          "dx " << got.dx[i] << ", exact " << want.dx[i]);
        }
        check_output("dx", fmt::format("{}_cancel_one_value", norm_name(norm)), got.dx, want.dx);
    }
}

TEST_CASE("family rows: a float64 row of huge values among ordinary ones, and a constant huge row") {
    for (Norm norm : {Norm::layer, Norm::rms}) {
        const NormProblem p = check_norm_problem(std::vector<std::int64_t>{4, 30}, norm, -1, 0, "x");
        Data<double> d = make_data<double>(4, 30, Kind::normal, 99);
        for (std::int64_t i = 0; i < 30; ++i) d.x[std::size_t(30 + i)] *= 1e290, d.x[std::size_t(90 + i)] = 3e300;
        check_against_naive(p, d.x, d.gamma, d.beta, d.dy, 1e-5, fmt::format("{}_huge_rows", norm_name(norm)));
        check_against_naive(p, d.x, d.gamma, d.beta, d.dy, 1e-30, fmt::format("{}_huge_rows_eps1e-30", norm_name(norm)));
    }
}

TEST_CASE("family rows: layer norm of two values with eps = 0 has dx = 0 exactly") {
    // x̂ = ±1 whatever x: y is locally constant (the naive reference leaves ~1e-34 there)
    const NormProblem p = check_norm_problem(std::vector<std::int64_t>{20, 2}, Norm::layer, -1, 0, "x");
    for (int cls = 0; cls < 2; ++cls) {
        Data<double> d = make_data<double>(20, 2, cls ? Kind::cancel : Kind::offset, 11, 1e6);
        const RowOutputs<double> got = run_rows(p, d.x, d.gamma, d.beta, d.dy, 0.0);
        CHECK(std::all_of(got.dx.begin(), got.dx.end(), [](double v) { return v == 0; }));
        const NaiveRowsResult want = naive_rows(d.x, d.gamma, d.beta, d.dy, 20, 2, 0.0, false);
        check_output("dgamma", "layer_20x2_eps0", got.dgamma, want.dgamma);
        check_output("y", "layer_20x2_eps0", got.y, want.y);
    }
}

TEST_CASE("family rows: NaN and infinity propagate to their own row only") {
    for (Norm norm : {Norm::layer, Norm::rms}) {
        const NormProblem p = check_norm_problem(std::vector<std::int64_t>{3, 8}, norm, -1, 0, "x");
        Data<float> d = make_data<float>(3, 8, Kind::normal, 5);
        d.x[9] = NAN;
        const bool rms = norm == Norm::rms;
        const RowOutputs<float> got = run_rows(p, d.x, d.gamma, rms ? std::vector<float>{} : d.beta, d.dy, 1e-5);
        for (int i = 8; i < 16; ++i) CHECK(std::isnan(got.y[std::size_t(i)]));
        for (int i = 8; i < 16; ++i) CHECK(std::isnan(got.dx[std::size_t(i)]));
        CHECK(std::isnan(got.invstd[1]));
        for (int i : {0, 7, 16, 23}) CHECK(std::isfinite(got.y[std::size_t(i)]));
        for (int i : {0, 7, 16, 23}) CHECK(std::isfinite(got.dx[std::size_t(i)]));
        CHECK(std::isfinite(got.invstd[0]));
    }
}

// ---- threads, defaults, refusals -----------------------------------------------------------

template <class T> bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

template <class T> void thread_identity(Norm norm, std::int64_t R, std::int64_t D, Kind kind) {
    const NormProblem p = check_norm_problem(std::vector<std::int64_t>{R, D}, norm, -1, 0, "x");
    REQUIRE(p.size() > 65536);
    Data<T> d = make_data<T>(R, D, kind, 7);
    const bool rms = norm == Norm::rms;
    if (rms) d.beta.clear();
    const RowOutputs<T> one = run_rows(p, d.x, d.gamma, d.beta, d.dy, 1e-5, 1);
    for (int t : {2, 3, 5, 8}) {
        CAPTURE(t);
        const RowOutputs<T> o = run_rows(p, d.x, d.gamma, d.beta, d.dy, 1e-5, t);
        CHECK(same_bits(one.y, o.y));
        CHECK(same_bits(one.mean, o.mean));
        CHECK(same_bits(one.invstd, o.invstd));
        CHECK(same_bits(one.dx, o.dx));
        CHECK(same_bits(one.dgamma, o.dgamma));
        CHECK(same_bits(one.dbeta, o.dbeta));
    }
}

TEST_CASE("family rows: the same bits for any thread count (more than 65536 values)") {
    thread_identity<float>(Norm::layer, 700, 129, Kind::normal);
    thread_identity<double>(Norm::layer, 300, 257, Kind::cancel);
    thread_identity<float>(Norm::rms, 40, 2000, Kind::cauchy);
    thread_identity<double>(Norm::rms, 5000, 16, Kind::normal);
    thread_identity<float>(Norm::layer, 300, 300, Kind::cancel); // rows certified and rows summed again
    thread_identity<float>(Norm::layer, 6, 20000, Kind::normal); // a chunk per row, dγ in six bands
    thread_identity<double>(Norm::rms, 9, 9000, Kind::cauchy);
    thread_identity<float>(Norm::layer, 513, 300, Kind::cancel_columns); // the columns summed again
    thread_identity<float>(Norm::rms, 301, 1000, Kind::cancel_columns);
}

TEST_CASE("family rows: null γ and β mean ones and zeros") {
    for (Norm norm : {Norm::layer, Norm::rms}) {
        const NormProblem p = check_norm_problem(std::vector<std::int64_t>{5, 37}, norm, -1, 0, "x");
        Data<float> d = make_data<float>(5, 37, Kind::normal, 3);
        const std::vector<float> ones(37, 1.0f), zeros(norm == Norm::rms ? 0 : 37, 0.0f);
        const RowOutputs<float> a = run_rows<float>(p, d.x, {}, {}, d.dy, 1e-5), b = run_rows(p, d.x, ones, zeros, d.dy, 1e-5);
        CHECK(same_bits(a.y, b.y));
        CHECK(same_bits(a.dx, b.dx));
        CHECK(same_bits(a.dgamma, b.dgamma));
        CHECK(same_bits(a.dbeta, b.dbeta));
    }
}

TEST_CASE("family rows: var + eps = 0 is refused before any output, naming the row") {
    const NormProblem layer = check_norm_problem(std::vector<std::int64_t>{2, 3, 4}, Norm::layer, -1, 0, "x");
    std::vector<double> x(24);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = double(i % 5);
    std::fill(x.begin() + 12, x.begin() + 16, 7.0); // row 3 = index (1, 0) constant
    std::vector<double> y(24, kSentinel), mean(6, kSentinel), invstd(6, kSentinel), dx(24, kSentinel);
    std::string message;
    try {
        family::forward_rows<double>(x.data(), nullptr, nullptr, layer, 0.0, y.data(), mean.data(), invstd.data(), 0);
    } catch (const InputError& e) {
        message = e.what();
    }
    CHECK(message.find("row 3") != std::string::npos);
    CHECK(message.find("(1, 0)") != std::string::npos);
    CHECK(std::all_of(y.begin(), y.end(), [](double v) { return v == kSentinel; }));
    CHECK(std::all_of(mean.begin(), mean.end(), [](double v) { return v == kSentinel; }));
    CHECK_THROWS_AS(family::backward_rows<double>(x.data(), nullptr, x.data(), layer, 0.0, dx.data(), nullptr, nullptr, 0),
                    InputError);
    CHECK(std::all_of(dx.begin(), dx.end(), [](double v) { return v == kSentinel; }));
    // a constant row is fine with eps > 0, and for RMS, whose zero is a row of zeros
    CHECK_NOTHROW(family::forward_rows<double>(x.data(), nullptr, nullptr, layer, 1e-5, y.data(), mean.data(),
                                               invstd.data(), 0));
    const NormProblem rms = check_norm_problem(std::vector<std::int64_t>{2, 3, 4}, Norm::rms, -1, 0, "x");
    CHECK_NOTHROW(family::forward_rows<double>(x.data(), nullptr, nullptr, rms, 0.0, y.data(), nullptr, invstd.data(), 0));
    std::fill(x.begin() + 4, x.begin() + 8, 0.0);
    CHECK_THROWS_WITH_AS(family::forward_rows<double>(x.data(), nullptr, nullptr, rms, 0.0, y.data(), nullptr,
                                                      invstd.data(), 0),
                         doctest::Contains("row 1"), InputError);
}

} // namespace
} // namespace bnorm::test
