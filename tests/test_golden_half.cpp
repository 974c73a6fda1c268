// The half-precision promise through the library API: the float64 engine on the exact
// widening of float16/bfloat16 inputs, each output rounded once (round_array), against
// tests/data/golden/half (scripts/golden_half.py: mpmath, rounded once from the exact
// value). Every output within 4 eps of its dtype; y bit-exact in the half-way cases.
#include "helpers.hpp"

#include "bnorm/family.hpp"
#include "bnorm/half.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <optional>

using namespace bnorm;

namespace {

double eps_of(DType t) { return t == DType::f16 ? 0x1p-10 : t == DType::bf16 ? 0x1p-7 : 0x1p-23; }

/// max|got − want| / max|want| / eps(t), both given as the values of t.
double eps_error(const Array& got, const Array& want, DType t) {
    const std::vector<double> g = test::to_doubles(got), w = test::to_doubles(want);
    double err = 0, scale = 0;
    for (std::size_t i = 0; i < w.size(); ++i) err = std::max(err, std::fabs(g[i] - w[i])), scale = std::max(scale, std::fabs(w[i]));
    return err / (scale > 0 ? scale : 1) / eps_of(t);
}

} // namespace

TEST_CASE("golden half: float16/bfloat16 outputs rounded once, within 4 eps of the exact result") {
    const std::filesystem::path root = std::filesystem::path(test::data_dir()) / "golden" / "half";
    int cases = 0;
    double worst = 0;
    for (const auto& e : std::filesystem::directory_iterator(root)) {
        if (!std::filesystem::exists(e.path() / "case.json")) continue;
        const auto meta = nlohmann::json::parse(test::slurp((e.path() / "case.json").string()));
        const std::string name = meta["name"];
        CAPTURE(name);
        auto load = [&](const char* f) { return test::load_npy((e.path() / f).string()); };
        const Array x = load("x.npy"), gamma = load("gamma.npy"), dy = load("dy.npy");
        const DType t = x.dtype();
        REQUIRE(is_half(t));
        const Norm norm = parse_norm(meta["norm"].get<std::string>());
        const bool rms = norm == Norm::rms;
        const std::optional<Array> beta = rms ? std::nullopt : std::optional<Array>(load("beta.npy"));
        const NormProblem p = check_norm_problem(x.shape(), norm, meta["axis"].get<int>(),
                                                 meta["groups"].is_null() ? 0 : meta["groups"].get<int>(), name);
        const double eps = std::stod(meta["eps"].get<std::string>());
        const Array xw = widen_to_f64(x), gw = widen_to_f64(gamma), dyw = widen_to_f64(dy);
        const std::optional<Array> bw = beta ? std::optional<Array>(widen_to_f64(*beta)) : std::nullopt;
        Array y(DType::f64, x.shape()), dx(DType::f64, x.shape());
        Array mean(DType::f64, p.stat_shape), invstd(DType::f64, p.stat_shape);
        Array dgamma(DType::f64, p.param_shape), dbeta(DType::f64, p.param_shape);
        forward<double>(xw.data<double>(), gw.data<double>(), bw ? bw->data<double>() : nullptr, p, eps,
                        y.data<double>(), rms ? nullptr : mean.data<double>(), invstd.data<double>());
        backward<double>(xw.data<double>(), gw.data<double>(), dyw.data<double>(), p, eps, dx.data<double>(),
                         dgamma.data<double>(), rms ? nullptr : dbeta.data<double>());
        struct Out {
            const char* file;
            const Array* value;
            DType dtype;
        };
        std::vector<Out> outs = {{"y.npy", &y, t}, {"dx.npy", &dx, t}, {"invstd.npy", &invstd, DType::f32},
                                 {"dgamma.npy", &dgamma, DType::f32}};
        if (!rms) outs.push_back({"mean.npy", &mean, DType::f32}), outs.push_back({"dbeta.npy", &dbeta, DType::f32});
        for (const Out& o : outs) {
            CAPTURE(o.file);
            const Array want = load(o.file);
            REQUIRE(want.dtype() == o.dtype);
            Array got = round_array(*o.value, o.dtype);
            got.reshape(want.shape());
            const double err = eps_error(got, want, o.dtype);
            worst = std::max(worst, err);
            CHECK(err <= 4);
            if (meta["bits"].get<bool>())
                CHECK(std::memcmp(got.bytes(), want.bytes(), want.nbytes()) == 0);
        }
        ++cases;
    }
    CHECK(cases >= 16);
    MESSAGE(fmt::format("golden half ({} cases): worst {:.3f} eps of the output's dtype", cases, worst));
}
