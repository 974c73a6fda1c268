// The accuracy promise, through the library API: every output within 4 eps (normwise) of
// the exact result computed by scripts/golden.py with mpmath. Prints the worst figure.
#include "helpers.hpp"

#include "bnorm/batchnorm.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>

using namespace bnorm;

namespace {

struct Worst {
    double err = 0;
    std::string where;
    void update(double e, const std::string& w) {
        if (e > err) err = e, where = w;
    }
};

template <class T>
void check_case(const std::filesystem::path& dir, const nlohmann::json& meta, Worst& worst) {
    auto load = [&](const char* name) { return test::load_npy((dir / name).string()); };
    const Array x = load("x.npy"), gamma = load("gamma.npy"), beta = load("beta.npy"), dy = load("dy.npy");
    REQUIRE(x.dtype() == dtype_of<T>());
    const double eps = std::stod(meta["eps"].get<std::string>());
    const Layout l = collapse(x.shape(), meta["axis"].get<int>());
    const auto n = static_cast<std::size_t>(l.size()), C = static_cast<std::size_t>(l.channels);

    std::vector<T> y(n), mean(C), invstd(C), dx(n), dgamma(C), dbeta(C);
    forward<T>(x.data<T>(), gamma.data<T>(), beta.data<T>(), l, eps, y.data(), mean.data(), invstd.data());
    backward<T>(x.data<T>(), gamma.data<T>(), dy.data<T>(), l, eps, dx.data(), dgamma.data(), dbeta.data());

    const std::pair<const char*, const std::vector<T>*> outputs[] = {
        {"y", &y}, {"mean", &mean}, {"invstd", &invstd}, {"dx", &dx}, {"dgamma", &dgamma}, {"dbeta", &dbeta}};
    std::string line = fmt::format("  {:52}", meta["name"].get<std::string>());
    for (const auto& [name, got] : outputs) {
        const std::vector<double> exact = test::to_doubles(load((std::string(name) + ".npy").c_str()));
        const double e = test::eps_error<T>(*got, exact);
        CAPTURE(meta["name"].get<std::string>());
        CAPTURE(name);
        CHECK(e <= 4.0);
        worst.update(e, meta["name"].get<std::string>() + " " + name);
        line += fmt::format(" {}={:.2f}", name, e);
    }
    MESSAGE(line);
}

} // namespace

TEST_CASE("golden: every output within 4 eps of the exact mpmath result") {
    const std::filesystem::path root = test::data_dir() + "/golden";
    std::vector<std::filesystem::path> dirs;
    for (const auto& e : std::filesystem::directory_iterator(root))
        if (std::filesystem::exists(e.path() / "case.json")) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    REQUIRE(dirs.size() >= 30);

    Worst worst32, worst64;
    for (const auto& dir : dirs) {
        const auto meta = nlohmann::json::parse(test::slurp((dir / "case.json").string()));
        if (meta["dtype"] == "float32") check_case<float>(dir, meta, worst32);
        else check_case<double>(dir, meta, worst64);
    }
    MESSAGE(fmt::format("golden ({} cases): worst float64 {:.3f} eps ({}), worst float32 {:.3f} eps ({})",
                        dirs.size(), worst64.err, worst64.where, worst32.err, worst32.where));
}
