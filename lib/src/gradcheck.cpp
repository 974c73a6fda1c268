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
constexpr double kParamStep = 0x1p-70; // for γ and β, on which f depends linearly

/// What every step of one check reads: the problem as the passes see it (channels as
/// contiguous doubles, with their steps) and the choices made once from the options.
struct Context {
    const GradcheckOptions& opt;
    double eps;
    std::int64_t n, C, m;
    ChannelMap map;
    int threads;
    double rtol;
    bool elementwise;
    int directions; // random ±1 directions per channel and draw: at most 8, a bit of a sign byte each
    std::vector<double> x;                   // channel c at [c*m, (c+1)*m)
    std::vector<double> gamma, beta, step;   // per channel: γ (ones), β (zeros), h_c
};

/// Channel by channel, as contiguous doubles (channel c at [c*m, (c+1)*m)).
template <class T> void gather_channels(const T* v, const Context& ctx, std::vector<double>& out) {
    for (std::int64_t c = 0; c < ctx.C; ++c)
        for (std::int64_t j = 0; j < ctx.m; ++j) out[c * ctx.m + j] = double(v[ctx.map.flat(c, j)]);
}

/// f_c of the check's mode: the forward template of training or of inference mode.
template <class S, class XOf>
S objective(const Context& ctx, std::int64_t c, const XOf& x_of, const double* dy, const S& g, const S& b) {
    return ctx.opt.eval ? channel_objective_eval(ctx.m, x_of, dy, g, b, ctx.opt.running_mean[c],
                                                 ctx.opt.running_var[c], ctx.eps)
                        : channel_objective(ctx.m, x_of, dy, g, b, ctx.eps);
}

/// The context of a check of x: the choices its options and size call for, its channels
/// gathered, and each channel's step sized from bnorm's forward pass.
template <class T>
Context make_context(const T* x, const Layout& l, const T* gamma, const T* beta, double eps,
                     const GradcheckOptions& opt) {
    const std::int64_t n = l.size(), C = l.channels;
    const bool elementwise = opt.full || n <= opt.elementwise_limit;
    Context ctx{opt, eps, n, C, l.per_channel(), ChannelMap{l}, detail::resolve_threads(opt.threads),
                opt.rtol ? *opt.rtol : (sizeof(T) == 4 ? 1e-5 : 1e-11), elementwise,
                elementwise ? 0 : std::min(opt.directions, 8), {}, {}, {}, {}};

    // Channel statistics from bnorm's forward pass (also validates eps and the variance).
    // They only size the steps: h_c = 2^-70·std_c, an exact power-of-two scaling of it.
    // In inference mode the running statistics size them instead (and forward_eval validates
    // them: a negative variance, or var + eps = 0).
    std::vector<T> invstd(C), y(n);
    if (opt.eval) {
        const std::vector<T> rm(opt.running_mean.begin(), opt.running_mean.end());
        const std::vector<T> rv(opt.running_var.begin(), opt.running_var.end());
        forward_eval<T>(x, gamma, beta, RunningStats<T>{rm.data(), rv.data()}, l, eps, y.data());
        for (std::int64_t c = 0; c < C; ++c) invstd[c] = T(1 / std::sqrt(opt.running_var[c] + eps));
    } else
        forward<T>(x, gamma, beta, l, eps, y.data(), nullptr, invstd.data());
    ctx.step.resize(C);
    for (std::int64_t c = 0; c < C; ++c) ctx.step[c] = std::ldexp(1.0 / double(invstd[c]), -70);

    ctx.x.resize(n);
    gather_channels(x, ctx, ctx.x);
    ctx.gamma.resize(C);
    ctx.beta.resize(C);
    for (std::int64_t c = 0; c < C; ++c) {
        ctx.gamma[c] = gamma ? double(gamma[c]) : 1.0;
        ctx.beta[c] = beta ? double(beta[c]) : 0.0;
    }
    return ctx;
}

/// The report's description of the check, before any result.
template <class T>
GradcheckReport start_report(const Context& ctx, bool dy_given, const GivenGradients<T>& given) {
    GradcheckReport r;
    r.gradients_given = given.any();
    r.dy_given = dy_given;
    r.mode = ctx.elementwise ? "elementwise" : "randomized";
    r.dy_draws = dy_given ? 1 : ctx.opt.random_dy_draws;
    r.x.judged = !given.any() || given.dx;
    r.gamma.judged = !given.any() || given.dgamma;
    r.beta.judged = !given.any() || given.dbeta;
    r.x.total = ctx.n;
    r.gamma.total = r.beta.total = ctx.C;
    r.lanes = kLanes;
    r.step_relative = 0x1p-70; // the h_c of make_context, relative to std_c
    return r;
}

/// One dy draw: its upstream gradient channel by channel, the signs of the random
/// directions, the probes of every channel and their numerical derivatives. The buffers
/// dy and signs are kept from one draw to the next.
struct Draw {
    int index = 0;
    std::vector<double> dy;                  // laid out like Context::x
    std::vector<std::uint8_t> signs;         // bit d: sign of direction d (randomized mode)
    std::vector<std::vector<Probe>> probes;  // per channel
    std::vector<std::vector<dd>> numerical;  // per channel, one per probe
};

/// The probes of every channel: γ, β, then the elements compared one by one (all of
/// them, or the first and last plus random samples), then random ±1 directions, whose
/// signs it draws into d.signs.
void make_probes(const Context& ctx, const GradcheckReport& r, Draw& d) {
    const std::int64_t n = ctx.n, C = ctx.C, m = ctx.m;
    const GradcheckOptions& opt = ctx.opt;
    d.probes.assign(C, {});
    for (std::int64_t c = 0; c < C; ++c) {
        if (r.gamma.judged) d.probes[c].push_back({Probe::kGamma, 0});
        if (r.beta.judged) d.probes[c].push_back({Probe::kBeta, 0});
    }
    if (!r.x.judged) return;
    std::vector<std::vector<std::int64_t>> positions(C);
    for (std::int64_t c = 0; c < C; ++c) {
        if (ctx.elementwise) {
            positions[c].resize(m);
            std::iota(positions[c].begin(), positions[c].end(), 0);
        } else {
            positions[c] = {0, m - 1};
        }
    }
    if (!ctx.elementwise) {
        for (int s = 0; s < opt.samples; ++s) {
            const auto flat = std::int64_t(random_bits(opt.seed, kSampleStream + d.index, s) % std::uint64_t(n));
            positions[ctx.map.channel_of(flat)].push_back(ctx.map.position_in_channel(flat));
        }
        for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t j = 0; j < m; ++j)
                d.signs[c * m + j] =
                    std::uint8_t(random_bits(opt.seed, kDirectionStream + d.index, ctx.map.flat(c, j)));
    }
    for (std::int64_t c = 0; c < C; ++c) {
        std::sort(positions[c].begin(), positions[c].end());
        positions[c].erase(std::unique(positions[c].begin(), positions[c].end()), positions[c].end());
        for (const std::int64_t j : positions[c]) d.probes[c].push_back({Probe::kElement, j});
        for (int dir = 0; dir < ctx.directions; ++dir) d.probes[c].push_back({Probe::kDirection, dir});
    }
}

/// Up to kLanes probes of one channel, evaluated by one complex-step pass.
struct PassItem {
    std::int64_t c, first, count;
};

/// Runs one pass and writes the derivatives along its probes into their slots of
/// d.numerical, and no others.
void run_pass(const Context& ctx, const Draw& d, const PassItem& it, std::vector<dd>& out) {
    const std::int64_t c = it.c, m = ctx.m;
    const Probe* pr = d.probes[c].data() + it.first;
    const double h = ctx.step[c];
    const double* xs = ctx.x.data() + c * m;
    const std::uint8_t* signs = d.signs.empty() ? nullptr : d.signs.data() + c * m;
    Pass g{{ctx.gamma[c], 0}}, b{{ctx.beta[c], 0}};
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
    const Pass f = objective(ctx, c, x_of, d.dy.data() + c * m, g, b);
    for (int k = 0; k < it.count; ++k) {
        const bool param = pr[k].kind == Probe::kGamma || pr[k].kind == Probe::kBeta;
        out[it.first + k] = detail::div(f.im[k], param ? kParamStep : h);
    }
}

/// The numerical derivatives along every probe of the draw, into d.numerical, counted
/// in r's forward evaluations. Passes run in a fixed order and each writes only its own
/// slots, so threads cannot change the numbers.
void numerical_derivatives(const Context& ctx, Draw& d, GradcheckReport& r) {
    std::vector<PassItem> passes;
    d.numerical.assign(ctx.C, {});
    for (std::int64_t c = 0; c < ctx.C; ++c) {
        d.numerical[c].resize(d.probes[c].size());
        for (std::int64_t b = 0; b < std::int64_t(d.probes[c].size()); b += kLanes)
            passes.push_back({c, b, std::min<std::int64_t>(kLanes, std::int64_t(d.probes[c].size()) - b)});
    }
    // In slices, so that progress is reported from this thread.
    const std::int64_t slices = std::min<std::int64_t>(50, std::int64_t(passes.size()));
    for (std::int64_t sl = 0; sl < slices; ++sl) {
        const std::int64_t lo = std::int64_t(passes.size()) * sl / slices;
        const std::int64_t hi = std::int64_t(passes.size()) * (sl + 1) / slices;
        detail::parallel_for(hi - lo, ctx.threads, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t k = lo + b; k < lo + e; ++k) run_pass(ctx, d, passes[k], d.numerical[passes[k].c]);
        });
        if (ctx.opt.progress) ctx.opt.progress((d.index + double(sl + 1) / double(slices)) / r.dy_draws);
    }
    r.forward_evaluations += std::int64_t(passes.size());
    r.forward_element_evaluations += std::int64_t(passes.size()) * ctx.m;
}

/// Judges the elements compared one by one (x's probed elements, every γ and β).
template <class T>
void judge_elements(const Context& ctx, const Draw& d, const GivenGradients<T>& a, const Shape& shape,
                    GradcheckReport& r) {
    std::vector<Sample> sx, sg, sb;
    for (std::int64_t c = 0; c < ctx.C; ++c) {
        for (std::size_t k = 0; k < d.probes[c].size(); ++k) {
            const Probe& pr = d.probes[c][k];
            const double num = to_double(d.numerical[c][k]);
            if (pr.kind == Probe::kGamma) sg.push_back({c, double(a.dgamma[c]), num});
            if (pr.kind == Probe::kBeta) sb.push_back({c, double(a.dbeta[c]), num});
            if (pr.kind == Probe::kElement) {
                const std::int64_t flat = ctx.map.flat(c, pr.arg);
                sx.push_back({flat, double(a.dx[flat]), num});
            }
        }
    }
    const std::int64_t C = ctx.C;
    if (r.gamma.judged) judge(r.gamma, sg, Shape{C}, d.index, ctx.rtol, ctx.opt.atol), r.gamma.checked = C;
    if (r.beta.judged) judge(r.beta, sb, Shape{C}, d.index, ctx.rtol, ctx.opt.atol), r.beta.checked = C;
    if (r.x.judged) {
        judge(r.x, sx, shape, d.index, ctx.rtol, ctx.opt.atol);
        r.x.checked = std::max<std::int64_t>(r.x.checked, std::int64_t(sx.size()));
    }
}

/// Randomized mode: judges dx by its directional derivatives, one per channel and direction.
/// If every element were within atol + rtol·|n_i|, the directional derivative Σ n_i·v_i
/// would be within m·atol + rtol·Σ|n_i| of Σ a_i·v_i.
template <class T> void judge_directions(const Context& ctx, const Draw& d, const T* a_dx, GradcheckReport& r) {
    const std::int64_t C = ctx.C, m = ctx.m;
    const int directions = ctx.directions;
    std::vector<dd> dir_numerical(std::size_t(C) * directions);
    for (std::int64_t c = 0; c < C; ++c)
        for (std::size_t k = 0; k < d.probes[c].size(); ++k)
            if (const Probe& pr = d.probes[c][k]; pr.kind == Probe::kDirection)
                dir_numerical[c * directions + pr.arg] = d.numerical[c][k];
    const double atol = ctx.opt.atol ? *ctx.opt.atol : r.x.atol;
    for (std::int64_t c = 0; c < C; ++c) {
        for (int dir = 0; dir < directions; ++dir) {
            dd ana{}, scale{};
            for (std::int64_t j = 0; j < m; ++j) {
                const double a = double(a_dx[ctx.map.flat(c, j)]);
                ana = detail::add(ana, (d.signs[c * m + j] >> dir) & 1 ? a : -a);
                scale = detail::add(scale, std::abs(a));
            }
            const double err = std::abs(to_double(detail::sub(ana, dir_numerical[c * directions + dir])));
            const double allowed = double(m) * atol + ctx.rtol * to_double(scale);
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

/// ∂f/∂x_j of channel c by Richardson-extrapolated central differences of the forward
/// template in real double-double, at steps 2^-20 and 2^-21 of the channel's std.
dd richardson_derivative(const Context& ctx, const Draw& d, std::int64_t c, std::int64_t j) {
    const std::int64_t m = ctx.m;
    const double* xs = ctx.x.data() + c * m;
    const Real g{{ctx.gamma[c], 0}}, b{{ctx.beta[c], 0}};
    auto central = [&](double hh) {
        const dd plus = detail::two_sum(xs[j], hh), minus = detail::two_sum(xs[j], -hh);
        auto at = [&](const dd& xj) {
            return objective(ctx, c, [&](std::int64_t i) { return i == j ? Real{xj} : Real{{xs[i], 0}}; },
                             d.dy.data() + c * m, g, b);
        };
        return detail::div((at(plus) - at(minus)).v, 2 * hh);
    };
    const double hh = std::ldexp(ctx.step[c], 50); // 2^-20 std
    const dd d1 = central(hh), d2 = central(hh / 2);
    return detail::div(detail::sub(detail::mul(d2, 4.0), d1), 3.0);
}

/// The method's own error: complex step against Richardson-extrapolated central
/// differences, on up to 6 probed elements (the first few and the last of a few channels).
void crosscheck(const Context& ctx, const Draw& d, GradcheckReport& r) {
    const std::int64_t C = ctx.C;
    double max_diff = 0, max_mag = 0;
    int done = 0;
    for (std::int64_t c = 0; c < C && done < 6; c += std::max<std::int64_t>(1, C / 3)) {
        for (std::size_t k = 0; k < d.probes[c].size() && done < 6; ++k) {
            if (d.probes[c][k].kind != Probe::kElement) continue;
            if (k > 4 && k + 1 != d.probes[c].size()) continue; // the first few and the last
            const dd richardson = richardson_derivative(ctx, d, c, d.probes[c][k].arg);
            max_diff = std::max(max_diff, std::abs(to_double(detail::sub(richardson, d.numerical[c][k]))));
            max_mag = std::max(max_mag, std::abs(to_double(d.numerical[c][k])));
            r.forward_evaluations += 4;
            r.forward_element_evaluations += 4 * ctx.m;
            ++done;
        }
    }
    r.crosscheck_elements = done;
    r.estimated_method_error = max_mag > 0 ? max_diff / max_mag : max_diff;
}

} // namespace

template <class T>
GradcheckReport gradcheck(const T* x, const Shape& shape, const Layout& l, const T* gamma, const T* beta,
                          const T* dy_given, double eps, const GivenGradients<T>& given,
                          const GradcheckOptions& opt) {
    const auto t0 = std::chrono::steady_clock::now();
    if (given.any() && !dy_given)
        throw UsageError("judging given gradients needs the --dy they were computed for");

    if (opt.eval && (std::int64_t(opt.running_mean.size()) != l.channels ||
                     std::int64_t(opt.running_var.size()) != l.channels))
        throw UsageError("gradcheck in inference mode needs C running means and variances");
    // Inference mode: the running statistics as T (they came from T).
    const std::vector<T> rm_t(opt.running_mean.begin(), opt.running_mean.end());
    const std::vector<T> rv_t(opt.running_var.begin(), opt.running_var.end());
    const RunningStats<T> running{rm_t.data(), rv_t.data()};
    const Context ctx = make_context(x, l, gamma, beta, eps, opt);
    GradcheckReport r = start_report(ctx, dy_given != nullptr, given);
    const std::int64_t n = ctx.n, C = ctx.C;

    std::vector<T> dy_draw(n), dx(n), dgamma(C), dbeta(C);
    // Each draw judges the analytic gradients for one dy against the derivatives of its probes.
    Draw d;
    d.dy.resize(n);
    d.signs.resize(ctx.elementwise ? 0 : n);
    for (int draw = 0; draw < r.dy_draws; ++draw) {
        d.index = draw;
        const T* dy = dy_given;
        if (!dy) {
            for (std::int64_t i = 0; i < n; ++i) dy_draw[i] = T(normal(opt.seed, kDyStream + draw, i));
            dy = dy_draw.data();
        }
        gather_channels(dy, ctx, d.dy);

        // The analytic gradients: the caller's, or bnorm's own backward.
        GivenGradients<T> a = given;
        if (!given.any()) {
            if (opt.eval) backward_eval<T>(x, gamma, dy, running, l, eps, dx.data(), dgamma.data(), dbeta.data());
            else backward<T>(x, gamma, dy, l, eps, dx.data(), dgamma.data(), dbeta.data());
            a = {dx.data(), dgamma.data(), dbeta.data()};
        }

        make_probes(ctx, r, d);
        numerical_derivatives(ctx, d, r);
        judge_elements(ctx, d, a, shape, r);
        if (r.x.judged && ctx.directions > 0) judge_directions(ctx, d, a.dx, r);
        if (draw == 0 && r.x.judged) crosscheck(ctx, d, r);
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
