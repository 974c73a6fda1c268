// Inputs that are refused or not ordinary: eps = 0 with a constant channel (refused, naming
// the channel, before any output, by forward() and by the two-step passes), NaN and
// infinities (kept to their own channel; never proven finite), magnitudes beyond the fast
// kernels' range.
#include "run_helpers.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"

#include <limits>
#include <random>
#include <utility>

using namespace bnorm;
using namespace bnorm::test;

TEST_CASE("eps = 0 with a constant channel is refused, naming the channel, before any output") {
    const std::vector<double> x{1, 5, 2, 5, 3, 5}; // (3, 2): channel 1 is constant
    const Layout l = collapse(Shape{3, 2}, 1);
    std::vector<double> y(6, kSentinel);
    CHECK_THROWS_WITH_AS(forward<double>(x.data(), nullptr, nullptr, l, 0.0, y.data(), nullptr, nullptr),
                         doctest::Contains("channel 1 has zero variance and eps = 0"), InputError);
    CHECK(y == std::vector<double>(6, kSentinel));
    // With eps > 0 a constant channel is fine: x̂ = 0, so y = β.
    const std::vector<double> beta{0, 4};
    forward<double>(x.data(), nullptr, beta.data(), l, 1e-5, y.data(), nullptr, nullptr);
    CHECK(y[1] == 4);
    CHECK(y[3] == 4);
}

TEST_CASE("the exact kernel's channels: refused on first use of the two-step passes, before any output") {
    // Channel 1 is constant and beyond the fast path's range (2^480): the exact kernel
    // refuses it with eps = 0, when statistics, gradients or apply first need it.
    const std::vector<double> x{1, 3e200, 2, 3e200, 4, 3e200}, dy{1, 2, 3, 4, 5, 6};
    const Layout l = collapse(Shape{3, 2}, 1);
    std::vector<double> y(6, kSentinel), mean(2, kSentinel);
    const ForwardPass<double> fwd(x.data(), nullptr, nullptr, l, 0.0);
    CHECK(!fwd.inputs_proven_finite());
    CHECK_THROWS_WITH_AS(fwd.statistics(mean.data(), nullptr), doctest::Contains("channel 1 has zero variance"),
                         InputError);
    CHECK_THROWS_AS(fwd.apply(0, 3, y.data()), InputError);
    CHECK(y == std::vector<double>(6, kSentinel));
    CHECK(mean == std::vector<double>(2, kSentinel));
    const BackwardPass<double> bwd(x.data(), nullptr, dy.data(), l, 0.0);
    CHECK_THROWS_AS(bwd.gradients(mean.data(), nullptr), InputError);
    CHECK_THROWS_AS(bwd.apply(0, 3, y.data()), InputError);
    CHECK(y == std::vector<double>(6, kSentinel));
    CHECK_THROWS_AS(forward<double>(x.data(), nullptr, nullptr, l, 0.0, y.data(), nullptr, nullptr), InputError);
    CHECK(y == std::vector<double>(6, kSentinel));
}

TEST_CASE("non-finite inputs propagate only to their channel") {
    std::vector<double> x{1, 2, NAN, 4, 3, 8}; // (3, 2): channel 0 has the NaN
    const Layout l = collapse(Shape{3, 2}, 1);
    std::vector<double> y(6), dx(6);
    forward<double>(x.data(), nullptr, nullptr, l, 1e-5, y.data(), nullptr, nullptr);
    for (int i : {0, 2, 4}) CHECK(std::isnan(y[i]));
    for (int i : {1, 3, 5}) CHECK(std::isfinite(y[i]));
}

namespace {

/// inputs_proven_finite() on data with one NaN or infinity at `where` in x or dy (or
/// none: where < 0), through every kernel path of the shape and dtype.
template <class T> void check_proven_finite(const Shape& shape, int axis, std::uint64_t seed) {
    const Layout l = collapse(shape, axis);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    std::vector<T> x(l.size()), dy(l.size());
    for (auto& v : x) v = T(normal(rng));
    for (auto& v : dy) v = T(normal(rng));
    CHECK(ForwardPass<T>(x.data(), nullptr, nullptr, l, 1e-5).inputs_proven_finite());
    CHECK(BackwardPass<T>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
    const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
    const std::int64_t n = l.size(), somewhere = std::int64_t(rng() % std::uint64_t(n));
    const std::pair<std::int64_t, T> cases[] = {{0, nan}, {n - 1, inf}, {somewhere, -inf}, {n / 2, nan}};
    for (const auto& one_case : cases) {
        const std::int64_t where = one_case.first; // (clang 14 cannot capture a structured binding)
        const T b = one_case.second;
        CAPTURE(where);
        CAPTURE(b);
        const T keep_x = x[where], keep_dy = dy[where];
        x[where] = b;
        CHECK(!ForwardPass<T>(x.data(), nullptr, nullptr, l, 1e-5).inputs_proven_finite());
        CHECK(!BackwardPass<T>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
        x[where] = keep_x, dy[where] = b;
        CHECK(!BackwardPass<T>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
        dy[where] = keep_dy;
    }
}

} // namespace

TEST_CASE("a NaN or an infinity anywhere in x or dy keeps the inputs from being proven finite") {
    // The CLI skips its own scan for NaN and ±inf when a pass proves there are none.
    check_proven_finite<float>({8300, 64}, 1, 1);   // channels-last tiles; two blocks (backward)
    check_proven_finite<float>({3, 5, 40, 41}, 1, 2); // runs of one channel
    check_proven_finite<double>({8300, 64}, 1, 3);  // two blocks
    check_proven_finite<double>({3, 5, 40, 41}, 1, 4);
    // float64 beyond the fast kernels' range proves nothing, even when finite.
    std::vector<double> huge{1e200, -3e200, 2e200, 5e199};
    CHECK(!ForwardPass<double>(huge.data(), nullptr, nullptr, collapse(Shape{4, 1}, 1), 1e-5).inputs_proven_finite());
    // Nor does data summed centred on its mean (|μ|/σ = 1e6), just below 2^480 on average
    // but partly above: the range is judged on |x|, not on |x − μ|.
    const Layout l = collapse(Shape{3001, 32}, 1);
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal;
    std::vector<double> x(std::size_t(l.size())), dy(x.size());
    for (auto& v : x) v = 0x1p480 * (1 + 1e-6 * (normal(rng) - 1));
    for (auto& v : dy) v = normal(rng);
    CHECK(!ForwardPass<double>(x.data(), nullptr, nullptr, l, 1e-5).inputs_proven_finite());
    CHECK(!BackwardPass<double>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
    for (auto& v : x) v = v * 0.5; // all below 2^480: proven
    CHECK(ForwardPass<double>(x.data(), nullptr, nullptr, l, 1e-5).inputs_proven_finite());
    CHECK(BackwardPass<double>(x.data(), nullptr, dy.data(), l, 1e-5).inputs_proven_finite());
}
