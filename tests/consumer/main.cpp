// Uses the installed library: bnorm::forward on a small (N, C, L) array, checked against
// the batch norm formula computed here, and the version from bnorm/version.hpp.
#include <bnorm/batchnorm.hpp>
#include <bnorm/layout.hpp>
#include <bnorm/version.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

int main() {
    const bnorm::Shape shape{2, 3, 4}; // (N, C, L), channel axis 1
    const bnorm::Layout l = bnorm::collapse(shape, 1);
    const std::int64_t C = l.channels, m = l.per_channel();

    std::vector<double> x(static_cast<std::size_t>(l.size()));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.7 * double(i)) * 3.0 + double(i % 5);
    const std::vector<double> gamma{1.5, -0.5, 2.0}, beta{0.25, 1.0, -3.0};
    const double eps = 1e-5;

    std::vector<double> y(x.size()), mean(C), invstd(C);
    bnorm::forward<double>(x.data(), gamma.data(), beta.data(), l, eps, y.data(), mean.data(),
                           invstd.data(), 1);

    int wrong = 0;
    for (std::int64_t c = 0; c < C; ++c) {
        const auto at = [&](std::int64_t o, std::int64_t k) {
            return static_cast<std::size_t>((o * C + c) * l.inner + k);
        };
        double mu = 0, var = 0;
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t k = 0; k < l.inner; ++k) mu += x[at(o, k)];
        mu /= double(m);
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t k = 0; k < l.inner; ++k) var += (x[at(o, k)] - mu) * (x[at(o, k)] - mu);
        var /= double(m);
        const double is = 1.0 / std::sqrt(var + eps);
        if (std::abs(mean[c] - mu) > 1e-12 * (1 + std::abs(mu)) || std::abs(invstd[c] - is) > 1e-12 * is) ++wrong;
        for (std::int64_t o = 0; o < l.outer; ++o)
            for (std::int64_t k = 0; k < l.inner; ++k) {
                const double want = gamma[c] * (x[at(o, k)] - mu) * is + beta[c];
                if (std::abs(y[at(o, k)] - want) > 1e-12 * (1 + std::abs(want))) {
                    std::printf("y[%lld, %lld, %lld] = %.17g, expected %.17g\n", (long long)o,
                                (long long)c, (long long)k, y[at(o, k)], want);
                    ++wrong;
                }
            }
    }
    std::printf("bnorm %s (%d.%d.%d): %s\n", bnorm::version_string, BNORM_VERSION_MAJOR,
                BNORM_VERSION_MINOR, BNORM_VERSION_PATCH, wrong ? "WRONG" : "ok");
    return wrong ? 1 : 0;
}
