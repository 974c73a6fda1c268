// Gradient check by complex-step differentiation in double-double arithmetic.
// See lib/include/bnorm/gradcheck.hpp for the contract and README.md for the report.
#include "bnorm/gradcheck.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"
#include "ddouble.hpp"
#include "parallel.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <array>
#include <numeric>

namespace bnorm {
namespace {

using detail::dd;

// ---- the two scalar types the forward template is instantiated for ------------------

/// A real double-double number.
struct Real {
    dd v;
};
inline Real operator+(Real a, Real b) { return {detail::add(a.v, b.v)}; }
inline Real operator-(Real a, Real b) { return {detail::sub(a.v, b.v)}; }
inline Real operator*(Real a, Real b) { return {detail::mul(a.v, b.v)}; }
inline Real operator*(Real a, double b) { return {detail::mul(a.v, b)}; }
inline Real operator/(Real a, double b) { return {detail::div(a.v, b)}; }
inline Real operator+(Real a, double b) { return {detail::add(a.v, b)}; }
inline Real rsqrt(Real a) { return {detail::rsqrt(a.v)}; }

/// A complex number with K imaginary units, double-double parts: z = re + Σ_k im_k·i_k.
/// It runs the complex step along K directions in one pass, sharing the real part.
/// With steps of 2^-70 of the standard deviation, products of two imaginary parts are
/// O(h²) relative, below double-double resolution (2^-106), so they are not formed: for
/// K = 1 this is the ordinary complex product to working precision.
template <int K> struct Lanes {
    dd re;
    std::array<dd, K> im{};
};
template <int K> inline Lanes<K> operator+(const Lanes<K>& a, const Lanes<K>& b) {
    Lanes<K> r{detail::add(a.re, b.re)};
    for (int k = 0; k < K; ++k) r.im[k] = detail::add(a.im[k], b.im[k]);
    return r;
}
template <int K> inline Lanes<K> operator-(const Lanes<K>& a, const Lanes<K>& b) {
    Lanes<K> r{detail::sub(a.re, b.re)};
    for (int k = 0; k < K; ++k) r.im[k] = detail::sub(a.im[k], b.im[k]);
    return r;
}
template <int K> inline Lanes<K> operator*(const Lanes<K>& a, const Lanes<K>& b) {
    Lanes<K> r{detail::mul(a.re, b.re)};
    for (int k = 0; k < K; ++k) r.im[k] = detail::add(detail::mul(a.re, b.im[k]), detail::mul(a.im[k], b.re));
    return r;
}
template <int K> inline Lanes<K> operator*(const Lanes<K>& a, double b) {
    Lanes<K> r{detail::mul(a.re, b)};
    for (int k = 0; k < K; ++k) r.im[k] = detail::mul(a.im[k], b);
    return r;
}
template <int K> inline Lanes<K> operator/(const Lanes<K>& a, double b) {
    Lanes<K> r{detail::div(a.re, b)};
    for (int k = 0; k < K; ++k) r.im[k] = detail::div(a.im[k], b);
    return r;
}
template <int K> inline Lanes<K> operator+(const Lanes<K>& a, double b) {
    Lanes<K> r = a;
    r.re = detail::add(a.re, b);
    return r;
}
/// 1/sqrt(z) = a^-1/2·(1 − i·b/(2a) + O(b²)) for z = a + i·b, b tiny: the O(b²) term is
/// below double-double resolution here (see above).
template <int K> inline Lanes<K> rsqrt(const Lanes<K>& z) {
    const dd r = detail::rsqrt(z.re);
    const dd half_r3 = detail::mul(detail::mul(detail::mul(r, r), r), -0.5);
    Lanes<K> out{r};
    for (int k = 0; k < K; ++k) out.im[k] = detail::mul(half_r3, z.im[k]);
    return out;
}

/// The forward pass of one channel, reduced to the objective f_c = Σ dy·y, in the
/// arithmetic of S. Written once for every S, it is the definition being differentiated:
///   mean = Σ x / m (refined by a corrected second pass), var = Σ (x − mean)² / m,
///   invstd = 1/sqrt(var + eps), y = γ·(x − mean)·invstd + β,  f_c = Σ dy·y.
/// x_of(i) gives the i-th of the m values of the channel as an S.
template <class S, class XOf>
S channel_objective(std::int64_t m, const XOf& x_of, const double* dy, const S& gamma, const S& beta,
                    double eps) {
    const double md = static_cast<double>(m);
    S sum{};
    for (std::int64_t i = 0; i < m; ++i) sum = sum + x_of(i);
    const S mean0 = sum / md;
    S sd{}, sdd{};
    for (std::int64_t i = 0; i < m; ++i) {
        const S d = x_of(i) - mean0;
        sd = sd + d;
        sdd = sdd + d * d;
    }
    const S shift = sd / md;
    const S mean = mean0 + shift;
    const S var = (sdd - sd * shift) / md; // biased variance
    const S invstd = rsqrt(var + eps);
    const S gamma_invstd = gamma * invstd;
    S f{};
    for (std::int64_t i = 0; i < m; ++i) {
        const S y = (x_of(i) - mean) * gamma_invstd + beta;
        f = f + y * dy[i];
    }
    return f;
}

/// The inference-mode forward of one channel, reduced to f_c = Σ dy·y with the running
/// statistics as constants: y = γ·(x − rm)/sqrt(rv + eps) + β.
template <class S, class XOf>
S channel_objective_eval(std::int64_t m, const XOf& x_of, const double* dy, const S& gamma, const S& beta,
                         double rm, double rv, double eps) {
    const S gamma_invstd = gamma * rsqrt(S{{rv, 0}} + eps);
    S f{};
    for (std::int64_t i = 0; i < m; ++i) f = f + ((x_of(i) - S{{rm, 0}}) * gamma_invstd + beta) * dy[i];
    return f;
}

// ---- seeded random numbers, independent of threads: value = F(seed, stream, index) ----

std::uint64_t splitmix64(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
std::uint64_t random_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
    return splitmix64(splitmix64(seed ^ splitmix64(stream)) + i);
}
double uniform01(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) { // in (0, 1)
    return (static_cast<double>(random_bits(seed, stream, i) >> 11) + 0.5) * 0x1p-53;
}
double normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) { // Box–Muller
    const double u = uniform01(seed, stream, 2 * i), v = uniform01(seed, stream, 2 * i + 1);
    return std::sqrt(-2 * std::log(u)) * std::cos(2 * M_PI * v);
}
enum Stream : std::uint64_t { kDyStream = 1, kDirectionStream = 1000, kSampleStream = 2000 };

// ---- the pieces of one check ----------------------------------------------------------

/// Channel c of an (outer, C, inner) tensor, as m contiguous values, and back.
struct ChannelMap {
    Layout l;
    std::int64_t flat(std::int64_t c, std::int64_t j) const { // j-th element of channel c
        return (j / l.inner) * l.channels * l.inner + c * l.inner + j % l.inner;
    }
    std::int64_t channel_of(std::int64_t flat_index) const { return (flat_index / l.inner) % l.channels; }
    std::int64_t position_in_channel(std::int64_t flat_index) const {
        return (flat_index / (l.channels * l.inner)) * l.inner + flat_index % l.inner;
    }
};

std::vector<std::int64_t> multi_index(std::int64_t flat, const Shape& shape) {
    std::vector<std::int64_t> idx(shape.size());
    for (std::size_t d = shape.size(); d-- > 0;) {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    return idx;
}

/// One compared element.
struct Sample {
    std::int64_t index; // flat index into the tensor
    double analytic, numerical;
};

double to_double(const dd& v) { return v.hi + v.lo; }

/// Folds the samples of one tensor for one dy draw into its verdict.
void judge(TensorVerdict& v, const std::vector<Sample>& samples, const Shape& shape, int draw,
           double rtol, std::optional<double> atol_opt) {
    double max_num = 0;
    for (const Sample& s : samples) max_num = std::max(max_num, std::abs(s.numerical));
    const double atol = atol_opt ? *atol_opt : 1e-3 * rtol * max_num;
    const double floor = 1e-3 * max_num;
    for (const Sample& s : samples) {
        const double err = std::abs(s.analytic - s.numerical);
        const double allowed = atol + rtol * std::abs(s.numerical);
        const bool ok = err <= allowed; // NaN fails
        const double ratio = std::isnan(err) ? INFINITY : (allowed > 0 ? err / allowed : (err > 0 ? INFINITY : 0));
        if (!ok) v.passed = false;
        v.max_abs_err = std::max(v.max_abs_err, std::isnan(err) ? INFINITY : err);
        const double denom = std::max(std::abs(s.numerical), floor);
        const double rel = std::isnan(err) ? INFINITY : (denom > 0 ? err / denom : (err > 0 ? INFINITY : 0));
        v.max_rel_err = std::max(v.max_rel_err, rel);
        if (ratio > v.worst_ratio) {
            v.worst_ratio = ratio;
            v.worst_index = multi_index(s.index, shape);
            v.worst_analytic = s.analytic;
            v.worst_numerical = s.numerical;
            v.worst_draw = draw;
            v.atol = atol;
        }
    }
    v.rtol = rtol;
}

/// What one imaginary lane of a pass differentiates along.
struct Probe {
    enum Kind : std::uint8_t { kGamma, kBeta, kElement, kDirection } kind;
    std::int64_t arg; // the element's position in its channel, or the direction's number
};

constexpr int kLanes = 8;
using Pass = Lanes<kLanes>;

} // namespace

template <class T>
GradcheckReport gradcheck(const T* x, const Shape& shape, const Layout& l, const T* gamma, const T* beta,
                          const T* dy_given, double eps, const GivenGradients<T>& given,
                          const GradcheckOptions& opt) {
    const auto t0 = std::chrono::steady_clock::now();
    if (given.any() && !dy_given)
        throw UsageError("judging given gradients needs the --dy they were computed for");

    const std::int64_t n = l.size(), C = l.channels, m = l.per_channel();
    const ChannelMap map{l};
    const int threads = detail::resolve_threads(opt.threads);
    const double rtol = opt.rtol ? *opt.rtol : (sizeof(T) == 4 ? 1e-5 : 1e-11);

    GradcheckReport r;
    r.gradients_given = given.any();
    r.dy_given = dy_given != nullptr;
    const bool elementwise = opt.full || n <= opt.elementwise_limit;
    r.mode = elementwise ? "elementwise" : "randomized";
    r.dy_draws = dy_given ? 1 : opt.random_dy_draws;
    r.x.judged = !given.any() || given.dx;
    r.gamma.judged = !given.any() || given.dgamma;
    r.beta.judged = !given.any() || given.dbeta;
    r.x.total = n;
    r.gamma.total = r.beta.total = C;
    r.lanes = kLanes;

    // Channel statistics from bnorm's forward pass (also validates eps and the variance).
    // They only size the steps: h_c = 2^-70·std_c, an exact power-of-two scaling of it.
    std::vector<T> invstd(C), y(n);
    // Inference mode: the running statistics as T (they came from T), validated by forward_eval.
    std::vector<T> rm_t(opt.running_mean.begin(), opt.running_mean.end());
    std::vector<T> rv_t(opt.running_var.begin(), opt.running_var.end());
    if (opt.eval && (std::int64_t(rm_t.size()) != C || std::int64_t(rv_t.size()) != C))
        throw UsageError("gradcheck in inference mode needs C running means and variances");
    const RunningStats<T> running{rm_t.data(), rv_t.data()};
    if (opt.eval) {
        forward_eval<T>(x, gamma, beta, running, l, eps, y.data());
        for (std::int64_t c = 0; c < C; ++c) invstd[c] = T(1 / std::sqrt(opt.running_var[c] + eps));
    } else
        forward<T>(x, gamma, beta, l, eps, y.data(), nullptr, invstd.data());
    // f_c of the mode: the forward template of training or of inference mode
    auto objective = [&](std::int64_t c, const auto& x_of, const double* dyc_c, const auto& g, const auto& b) {
        return opt.eval ? channel_objective_eval(m, x_of, dyc_c, g, b, opt.running_mean[c], opt.running_var[c], eps)
                        : channel_objective(m, x_of, dyc_c, g, b, eps);
    };
    std::vector<double> step(C);
    for (std::int64_t c = 0; c < C; ++c) step[c] = std::ldexp(1.0 / double(invstd[c]), -70);
    constexpr double kParamStep = 0x1p-70; // for γ and β, on which f depends linearly
    r.step_relative = 0x1p-70;

    // The channels as contiguous double arrays (channel c at [c*m, (c+1)*m)).
    std::vector<double> xc(n), dyc(n);
    for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t j = 0; j < m; ++j) xc[c * m + j] = double(x[map.flat(c, j)]);
    auto gamma_of = [&](std::int64_t c) { return gamma ? double(gamma[c]) : 1.0; };
    auto beta_of = [&](std::int64_t c) { return beta ? double(beta[c]) : 0.0; };

    std::vector<T> dy_draw(n), dx(n), dgamma(C), dbeta(C);
    std::vector<std::uint8_t> direction_signs(elementwise ? 0 : n); // bit d: sign of direction d
    const int directions = elementwise ? 0 : std::min(opt.directions, 8);

    for (int draw = 0; draw < r.dy_draws; ++draw) {
        const T* dy = dy_given;
        if (!dy) {
            for (std::int64_t i = 0; i < n; ++i) dy_draw[i] = T(normal(opt.seed, kDyStream + draw, i));
            dy = dy_draw.data();
        }
        for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t j = 0; j < m; ++j) dyc[c * m + j] = double(dy[map.flat(c, j)]);

        // The analytic gradients: the caller's, or bnorm's own backward.
        const T *a_dx = given.dx, *a_dgamma = given.dgamma, *a_dbeta = given.dbeta;
        if (!given.any()) {
            if (opt.eval) backward_eval<T>(x, gamma, dy, running, l, eps, dx.data(), dgamma.data(), dbeta.data());
            else backward<T>(x, gamma, dy, l, eps, dx.data(), dgamma.data(), dbeta.data());
            a_dx = dx.data(), a_dgamma = dgamma.data(), a_dbeta = dbeta.data();
        }

        // The probes of every channel: γ, β, then the elements compared one by one (all of
        // them, or the first and last plus random samples), then random ±1 directions.
        std::vector<std::vector<Probe>> probes(C);
        for (std::int64_t c = 0; c < C; ++c) {
            if (r.gamma.judged) probes[c].push_back({Probe::kGamma, 0});
            if (r.beta.judged) probes[c].push_back({Probe::kBeta, 0});
        }
        if (r.x.judged) {
            std::vector<std::vector<std::int64_t>> positions(C);
            for (std::int64_t c = 0; c < C; ++c) {
                if (elementwise) {
                    positions[c].resize(m);
                    std::iota(positions[c].begin(), positions[c].end(), 0);
                } else {
                    positions[c] = {0, m - 1};
                }
            }
            if (!elementwise) {
                for (int s = 0; s < opt.samples; ++s) {
                    const auto flat = std::int64_t(random_bits(opt.seed, kSampleStream + draw, s) % std::uint64_t(n));
                    positions[map.channel_of(flat)].push_back(map.position_in_channel(flat));
                }
                for (std::int64_t c = 0; c < C; ++c)
                    for (std::int64_t j = 0; j < m; ++j)
                        direction_signs[c * m + j] =
                            std::uint8_t(random_bits(opt.seed, kDirectionStream + draw, map.flat(c, j)));
            }
            for (std::int64_t c = 0; c < C; ++c) {
                std::sort(positions[c].begin(), positions[c].end());
                positions[c].erase(std::unique(positions[c].begin(), positions[c].end()), positions[c].end());
                for (const std::int64_t j : positions[c]) probes[c].push_back({Probe::kElement, j});
                for (int d = 0; d < directions; ++d) probes[c].push_back({Probe::kDirection, d});
            }
        }

        // Passes: up to kLanes probes of one channel each, in a fixed order; every pass
        // writes only its own result slots, so threads cannot change the numbers.
        struct PassItem {
            std::int64_t c, first, count;
        };
        std::vector<PassItem> passes;
        std::vector<std::vector<dd>> result(C);
        for (std::int64_t c = 0; c < C; ++c) {
            result[c].resize(probes[c].size());
            for (std::int64_t b = 0; b < std::int64_t(probes[c].size()); b += kLanes)
                passes.push_back({c, b, std::min<std::int64_t>(kLanes, std::int64_t(probes[c].size()) - b)});
        }
        auto run_pass = [&](const PassItem& it) {
            const std::int64_t c = it.c;
            const Probe* pr = probes[c].data() + it.first;
            const double h = step[c];
            const double* xs = xc.data() + c * m;
            const std::uint8_t* signs = direction_signs.empty() ? nullptr : direction_signs.data() + c * m;
            Pass g{{gamma_of(c), 0}}, b{{beta_of(c), 0}};
            for (int k = 0; k < it.count; ++k) {
                if (pr[k].kind == Probe::kGamma) g.im[k] = {kParamStep, 0};
                if (pr[k].kind == Probe::kBeta) b.im[k] = {kParamStep, 0};
            }
            auto x_of = [&](std::int64_t i) {
                Pass v{{xs[i], 0}};
                for (int k = 0; k < it.count; ++k) {
                    if (pr[k].kind == Probe::kElement && pr[k].arg == i) v.im[k] = {h, 0};
                    else if (pr[k].kind == Probe::kDirection) v.im[k] = {(signs[i] >> pr[k].arg) & 1 ? h : -h, 0};
                }
                return v;
            };
            const Pass f = objective(c, x_of, dyc.data() + c * m, g, b);
            for (int k = 0; k < it.count; ++k) {
                const bool param = pr[k].kind == Probe::kGamma || pr[k].kind == Probe::kBeta;
                result[c][it.first + k] = detail::div(f.im[k], param ? kParamStep : h);
            }
        };
        // In slices, so that progress is reported from this thread.
        const std::int64_t slices = std::min<std::int64_t>(50, std::int64_t(passes.size()));
        for (std::int64_t sl = 0; sl < slices; ++sl) {
            const std::int64_t lo = std::int64_t(passes.size()) * sl / slices;
            const std::int64_t hi = std::int64_t(passes.size()) * (sl + 1) / slices;
            detail::parallel_for(hi - lo, threads, [&](std::int64_t b, std::int64_t e) {
                for (std::int64_t k = lo + b; k < lo + e; ++k) run_pass(passes[k]);
            });
            if (opt.progress) opt.progress((draw + double(sl + 1) / double(slices)) / r.dy_draws);
        }
        r.forward_evaluations += std::int64_t(passes.size());
        r.forward_element_evaluations += std::int64_t(passes.size()) * m;

        // Judge: element by element, then (randomized mode) the directional derivatives.
        std::vector<Sample> sx, sg, sb;
        std::vector<dd> dir_numerical(std::size_t(C) * directions);
        for (std::int64_t c = 0; c < C; ++c) {
            for (std::size_t k = 0; k < probes[c].size(); ++k) {
                const Probe& pr = probes[c][k];
                const double num = to_double(result[c][k]);
                if (pr.kind == Probe::kGamma) sg.push_back({c, double(a_dgamma[c]), num});
                if (pr.kind == Probe::kBeta) sb.push_back({c, double(a_dbeta[c]), num});
                if (pr.kind == Probe::kElement) {
                    const std::int64_t flat = map.flat(c, pr.arg);
                    sx.push_back({flat, double(a_dx[flat]), num});
                }
                if (pr.kind == Probe::kDirection) dir_numerical[c * directions + pr.arg] = result[c][k];
            }
        }
        if (r.gamma.judged) judge(r.gamma, sg, Shape{C}, draw, rtol, opt.atol), r.gamma.checked = C;
        if (r.beta.judged) judge(r.beta, sb, Shape{C}, draw, rtol, opt.atol), r.beta.checked = C;
        if (r.x.judged) {
            judge(r.x, sx, shape, draw, rtol, opt.atol);
            r.x.checked = std::max<std::int64_t>(r.x.checked, std::int64_t(sx.size()));
        }
        if (r.x.judged && directions > 0) {
            // If every element were within atol + rtol·|n_i|, the directional derivative
            // Σ n_i·v_i would be within m·atol + rtol·Σ|n_i| of Σ a_i·v_i.
            const double atol = opt.atol ? *opt.atol : r.x.atol;
            for (std::int64_t c = 0; c < C; ++c) {
                for (int d = 0; d < directions; ++d) {
                    dd ana{}, scale{};
                    for (std::int64_t j = 0; j < m; ++j) {
                        const double a = double(a_dx[map.flat(c, j)]);
                        ana = detail::add(ana, (direction_signs[c * m + j] >> d) & 1 ? a : -a);
                        scale = detail::add(scale, std::abs(a));
                    }
                    const double err = std::abs(to_double(detail::sub(ana, dir_numerical[c * directions + d])));
                    const double allowed = double(m) * atol + rtol * to_double(scale);
                    const double rel = scale.hi > 0 ? err / to_double(scale) : (err > 0 ? INFINITY : 0);
                    ++r.x.directional_checks;
                    if (!(err <= allowed)) r.x.directional_passed = r.x.passed = false;
                    if (!(rel <= r.x.directional_max_rel_err)) {
                        r.x.directional_max_rel_err = std::isnan(rel) ? INFINITY : rel;
                        r.x.directional_worst_channel = c;
                    }
                }
            }
        }

        // The method's own error, on draw 0: complex step against Richardson-extrapolated
        // central differences of the same forward template in real double-double.
        if (draw == 0 && r.x.judged) {
            std::vector<std::pair<std::int64_t, dd>> cross; // (channel, position) via probes
            double max_diff = 0, max_mag = 0;
            int done = 0;
            for (std::int64_t c = 0; c < C && done < 6; c += std::max<std::int64_t>(1, C / 3)) {
                for (std::size_t k = 0; k < probes[c].size() && done < 6; ++k) {
                    if (probes[c][k].kind != Probe::kElement) continue;
                    if (k > 4 && k + 1 != probes[c].size()) continue; // the first few and the last
                    const std::int64_t j = probes[c][k].arg;
                    const double* xs = xc.data() + c * m;
                    const Real g{{gamma_of(c), 0}}, b{{beta_of(c), 0}};
                    auto central = [&](double hh) {
                        const dd plus = detail::two_sum(xs[j], hh), minus = detail::two_sum(xs[j], -hh);
                        auto at = [&](const dd& xj) {
                            return objective(c, [&](std::int64_t i) { return i == j ? Real{xj} : Real{{xs[i], 0}}; },
                                             dyc.data() + c * m, g, b);
                        };
                        return detail::div((at(plus) - at(minus)).v, 2 * hh);
                    };
                    const double hh = std::ldexp(step[c], 50); // 2^-20 std
                    const dd d1 = central(hh), d2 = central(hh / 2);
                    const dd richardson = detail::div(detail::sub(detail::mul(d2, 4.0), d1), 3.0);
                    max_diff = std::max(max_diff, std::abs(to_double(detail::sub(richardson, result[c][k]))));
                    max_mag = std::max(max_mag, std::abs(to_double(result[c][k])));
                    r.forward_evaluations += 4;
                    r.forward_element_evaluations += 4 * m;
                    ++done;
                }
            }
            r.crosscheck_elements = done;
            r.estimated_method_error = max_mag > 0 ? max_diff / max_mag : max_diff;
        }
    }

    r.passed = r.x.passed && r.gamma.passed && r.beta.passed;
    r.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

template GradcheckReport gradcheck<float>(const float*, const Shape&, const Layout&, const float*, const float*,
                                          const float*, double, const GivenGradients<float>&,
                                          const GradcheckOptions&);
template GradcheckReport gradcheck<double>(const double*, const Shape&, const Layout&, const double*,
                                           const double*, const double*, double, const GivenGradients<double>&,
                                           const GradcheckOptions&);

} // namespace bnorm
