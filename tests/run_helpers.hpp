// Helpers shared by the batch-norm tests (test_accuracy, test_routes, test_channel_bits,
// test_passes, test_special_inputs): running forward and backward of the library, or of the
// exact kernel, on one tensor; a channel's values in an (outer, C, inner) tensor; a
// channel's outputs checked against a reference's, or against another run's bits. Nothing
// here computes batch norm: the references are the exact kernel (checked against mpmath by
// test_golden.cpp) and naive_batchnorm.hpp.
#pragma once

#include "helpers.hpp"

#include "bnorm/batchnorm.hpp"
#include "../lib/src/batchnorm_exact.hpp"
#include "../lib/src/channel_groups.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace bnorm::test {

inline constexpr double kSentinel = 8; // outputs are prefilled with it: they must be assigned

/// benchdnn-style descriptor of a problem, printed with every failure.
inline std::string repro(const Shape& shape, int axis, double eps, DType dt) {
    return fmt::format("shape{}_axis{}_eps{}_{}", fmt::join(shape, "x"), axis, eps, dtype_name(dt));
}

template <class T> std::vector<double> widen(const std::vector<T>& v) { return {v.begin(), v.end()}; }

/// An empty vector stands for a null pointer (γ = 1, β = 0).
template <class T> const T* or_null(const std::vector<T>& v) { return v.empty() ? nullptr : v.data(); }

/// The outputs of forward (y, mean, invstd) and backward (dx, dgamma, dbeta); those of a
/// step that was not run are empty.
template <class T> struct Outputs {
    std::vector<T> y, mean, invstd, dx, dgamma, dbeta;
};

/// Every output of `a`, with those of `b` where `a` has none (forward's and backward's).
template <class T> Outputs<T> joined(Outputs<T> a, const Outputs<T>& b) {
    for (auto f : {&Outputs<T>::y, &Outputs<T>::mean, &Outputs<T>::invstd, &Outputs<T>::dx, &Outputs<T>::dgamma,
                   &Outputs<T>::dbeta})
        if ((a.*f).empty()) a.*f = b.*f;
    return a;
}

namespace run_detail {
template <class T> Outputs<T> forward_outputs(std::size_t n, std::size_t C) {
    return {std::vector<T>(n, T(kSentinel)), std::vector<T>(C, T(kSentinel)), std::vector<T>(C, T(kSentinel)), {}, {}, {}};
}
template <class T> Outputs<T> backward_outputs(std::size_t n, std::size_t C) {
    return {{}, {}, {}, std::vector<T>(n, T(kSentinel)), std::vector<T>(C, T(kSentinel)), std::vector<T>(C, T(kSentinel))};
}
} // namespace run_detail

/// forward() on x (empty γ or β: null), every output prefilled with kSentinel.
template <class T>
Outputs<T> run_library_forward(const std::vector<T>& x, const std::vector<T>& gamma, const std::vector<T>& beta,
                               const Layout& l, double eps, int threads = 0) {
    Outputs<T> r = run_detail::forward_outputs<T>(x.size(), std::size_t(l.channels));
    forward<T>(x.data(), or_null(gamma), or_null(beta), l, eps, r.y.data(), r.mean.data(), r.invstd.data(), threads);
    return r;
}

/// backward() on x and dy (empty γ: null), every output prefilled with kSentinel.
template <class T>
Outputs<T> run_library_backward(const std::vector<T>& x, const std::vector<T>& gamma, const std::vector<T>& dy,
                                const Layout& l, double eps, int threads = 0) {
    Outputs<T> r = run_detail::backward_outputs<T>(x.size(), std::size_t(l.channels));
    backward<T>(x.data(), or_null(gamma), dy.data(), l, eps, r.dx.data(), r.dgamma.data(), r.dbeta.data(), threads);
    return r;
}

/// forward() and backward() of the library, with the same eps and threads.
template <class T>
Outputs<T> run_library(const std::vector<T>& x, const std::vector<T>& gamma, const std::vector<T>& beta,
                       const std::vector<T>& dy, const Layout& l, double eps, int threads = 0) {
    return joined(run_library_forward(x, gamma, beta, l, eps, threads), run_library_backward(x, gamma, dy, l, eps, threads));
}

/// The exact kernel's forward (all double-double, single-threaded: the reference).
template <class T>
Outputs<T> run_exact_forward(const std::vector<T>& x, const std::vector<T>& gamma, const std::vector<T>& beta,
                             const Layout& l, double eps) {
    Outputs<T> r = run_detail::forward_outputs<T>(x.size(), std::size_t(l.channels));
    detail::forward_exact<T>(x.data(), l, or_null(gamma), or_null(beta), eps, r.y.data(), r.mean.data(), r.invstd.data());
    return r;
}

/// The exact kernel's backward.
template <class T>
Outputs<T> run_exact_backward(const std::vector<T>& x, const std::vector<T>& gamma, const std::vector<T>& dy,
                              const Layout& l, double eps) {
    Outputs<T> r = run_detail::backward_outputs<T>(x.size(), std::size_t(l.channels));
    detail::backward_exact<T>(x.data(), or_null(gamma), dy.data(), l, eps, r.dx.data(), r.dgamma.data(), r.dbeta.data());
    return r;
}

/// The exact kernel's forward and backward, with the same eps.
template <class T>
Outputs<T> run_exact(const std::vector<T>& x, const std::vector<T>& gamma, const std::vector<T>& beta,
                     const std::vector<T>& dy, const Layout& l, double eps) {
    return joined(run_exact_forward(x, gamma, beta, l, eps), run_exact_backward(x, gamma, dy, l, eps));
}

// ---- channels of an (outer, C, inner) tensor ---------------------------------------------

/// f(v) on each of channel c's values, in order.
template <class T, class F> void for_channel(std::vector<T>& v, const Layout& l, std::int64_t c, F&& f) {
    for (std::int64_t o = 0; o < l.outer; ++o)
        for (std::int64_t k = 0; k < l.inner; ++k) f(v[std::size_t((o * l.channels + c) * l.inner + k)]);
}

/// Channel c's values, in order, widened to double.
template <class T> std::vector<double> channel_values(const std::vector<T>& v, const Layout& l, std::int64_t c) {
    std::vector<double> out;
    for (std::int64_t o = 0; o < l.outer; ++o)
        for (std::int64_t k = 0; k < l.inner; ++k) out.push_back(double(v[std::size_t((o * l.channels + c) * l.inner + k)]));
    return out;
}

/// Channel c's values, in order, in their own type.
template <class T> std::vector<T> channel_of(const std::vector<T>& v, const Layout& l, std::int64_t c) {
    std::vector<T> out;
    for (std::int64_t o = 0; o < l.outer; ++o)
        for (std::int64_t k = 0; k < l.inner; ++k) out.push_back(v[std::size_t((o * l.channels + c) * l.inner + k)]);
    return out;
}

/// Channel c's values replaced by `values`, in order.
template <class T> void set_channel(std::vector<T>& v, const Layout& l, std::int64_t c, const std::vector<T>& values) {
    std::size_t i = 0;
    for_channel(v, l, c, [&](T& e) { e = values[i++]; });
}

// ---- checks ------------------------------------------------------------------------------

namespace run_detail {
template <class T> struct Field {
    const char* name;
    std::vector<T> Outputs<T>::*member;
    bool per_element; // y and dx: one value per element; the others one per channel
};
template <class T> const Field<T> fields[] = {
    {"y", &Outputs<T>::y, true},           {"dx", &Outputs<T>::dx, true},
    {"mean", &Outputs<T>::mean, false},    {"invstd", &Outputs<T>::invstd, false},
    {"dgamma", &Outputs<T>::dgamma, false}, {"dbeta", &Outputs<T>::dbeta, false},
};
} // namespace run_detail

/// Every output that both have, against the reference `want` (another Outputs, of T or
/// double, or a NaiveResult), normwise over the tensor: within `tol` eps(T).
template <class T, class W> void check_outputs(const Outputs<T>& got, const W& want, double tol = 2) {
    const auto check = [&](const char* name, const std::vector<T>& g, const auto& w) {
        if (g.empty() || w.empty()) return;
        CAPTURE(name);
        CHECK(eps_error<T>(g, widen(w)) <= tol);
    };
    check("y", got.y, want.y);
    check("mean", got.mean, want.mean);
    check("invstd", got.invstd, want.invstd);
    check("dx", got.dx, want.dx);
    check("dgamma", got.dgamma, want.dgamma);
    check("dbeta", got.dbeta, want.dbeta);
}

/// Channel c's outputs (every one that both have) against the reference's, each on its own
/// scale (y and dx normwise over the channel): within `tol` eps(T).
template <class T> void check_channel(const Outputs<T>& got, const Outputs<T>& want, const Layout& l, std::int64_t c,
                                      double tol = 2) {
    CAPTURE(c);
    for (const auto& f : run_detail::fields<T>) {
        const std::vector<T>&g = got.*f.member, &w = want.*f.member;
        if (g.empty() || w.empty()) continue;
        CAPTURE(f.name);
        if (f.per_element) CHECK(eps_error<T>(channel_of(g, l, c), channel_values(w, l, c)) <= tol);
        else CHECK(eps_error<T>(std::vector<T>{g[std::size_t(c)]}, std::vector<double>{double(w[std::size_t(c)])}) <= tol);
    }
}

/// Channel ca of `a` (of layout la) and channel cb of `b` have the same outputs (every one
/// that both have), value for value.
template <class T> void check_same_channel(const Outputs<T>& a, const Layout& la, std::int64_t ca, const Outputs<T>& b,
                                           const Layout& lb, std::int64_t cb) {
    for (const auto& f : run_detail::fields<T>) {
        const std::vector<T>&va = a.*f.member, &vb = b.*f.member;
        if (va.empty() || vb.empty()) continue;
        CAPTURE(f.name);
        if (f.per_element) CHECK(channel_values(va, la, ca) == channel_values(vb, lb, cb));
        else CHECK(va[std::size_t(ca)] == vb[std::size_t(cb)]);
    }
}

/// The same channel of two runs on the same layout.
template <class T> void check_same_channel(const Outputs<T>& a, const Outputs<T>& b, const Layout& l, std::int64_t c) {
    check_same_channel(a, l, c, b, l, c);
}

/// The same bits, NaN included.
template <class T> bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

/// Every output that both have, bit for bit.
template <class T> void check_same_bits(const Outputs<T>& a, const Outputs<T>& b) {
    for (const auto& f : run_detail::fields<T>) {
        if ((a.*f.member).empty() || (b.*f.member).empty()) continue;
        CAPTURE(f.name);
        CHECK(same_bits(a.*f.member, b.*f.member));
    }
}

// ---- channel groups ----------------------------------------------------------------------

/// forward() and backward() take tensors with runs a group of channels at a time from
/// `bytes` of input, while this lives (else from the size of the last-level cache).
struct GroupsFrom {
    explicit GroupsFrom(std::int64_t bytes) { detail::set_group_threshold(bytes); }
    ~GroupsFrom() { detail::set_group_threshold(0); }
    GroupsFrom(const GroupsFrom&) = delete;
    GroupsFrom& operator=(const GroupsFrom&) = delete;
};

// ---- hard data ---------------------------------------------------------------------------

/// Half the values random with magnitudes 2^-40 to 1, the other half their negatives, plus
/// 2^-40: the sum is tiny against the values, and plain double sums of them round.
inline std::vector<float> cancelling_values(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    std::uniform_int_distribution<int> exponent(-40, 0);
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n / 2; ++i) v[i] = float(std::ldexp(normal(rng), exponent(rng)));
    for (std::size_t i = 0; i < n / 2; ++i) v[n / 2 + i] = -v[i];
    std::shuffle(v.begin() + std::ptrdiff_t(n / 2), v.end(), rng); // so that no partial sums mirror
    for (auto& e : v) e += 0x1p-40f;
    return v;
}

/// g less its projection on x − mean(x) (in long double), rounded to float: Σ g·(x − μ) of
/// the result is about 2^-24 of its terms, a dγ near 0.
inline std::vector<float> without_projection(const std::vector<double>& g, const std::vector<double>& x) {
    long double sx = 0, sxx = 0, sgx = 0;
    for (double v : x) sx += v;
    const long double mu = sx / (long double)x.size();
    for (std::size_t i = 0; i < x.size(); ++i) sxx += (x[i] - mu) * (x[i] - mu), sgx += g[i] * (x[i] - mu);
    std::vector<float> out(g.size());
    for (std::size_t i = 0; i < g.size(); ++i) out[i] = float(g[i] - sgx / sxx * (x[i] - mu));
    return out;
}

} // namespace bnorm::test
