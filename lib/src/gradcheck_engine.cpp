// The gradient check set by set (gradcheck_engine.hpp): probes, complex-step passes,
// verdicts. See lib/include/bnorm/gradcheck.hpp for the contract and docs/gradcheck.md
// for the method and the report.
#include "gradcheck_engine.hpp"

#include "complex_step.hpp"
#include "bnorm/judge.hpp"
#include "parallel.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

namespace bnorm::gradcheck_detail {
namespace {

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
    double scale = 0;   // the default criterion's scale_i (bnorm/judge.hpp)
};

/// The criterion of one check: the default, condition-aware one (|a − n| ≤ k·eps·scale_i
/// + floor, bnorm/judge.hpp), or --rtol/--atol's elementwise one.
struct Criterion {
    bool scaled = true;
    double k = kJudgeDefaultK, eps = 0; // eps of the gradients' dtype
    double rtol = 0;
    std::optional<double> atol;
    double tiny = 0; // the dtype's smallest subnormal: the least floor
};

/// The scaled criterion's floor for a tensor whose largest scale is max_scale, as
/// bnorm/judge.hpp: an exact zero with a zero scale must not flag a rounded result.
double scaled_floor(const Criterion& c, double max_scale) {
    return std::max(c.k * c.eps * 0x1p-40 * max_scale, c.tiny);
}

double to_double(const dd& v) { return v.hi + v.lo; }

/// Folds the samples of one tensor for one dy draw into its verdict.
/// max_scale: the largest scale of the whole tensor (the samples may be a few of it).
void judge(TensorVerdict& v, const std::vector<Sample>& samples, const Shape& shape, int draw, const Criterion& c,
           double max_scale) {
    double max_num = 0;
    for (const Sample& s : samples) max_num = std::max(max_num, std::abs(s.numerical));
    // scaled: atol is the floor (reported as atol_used), and k·eps·scale_i takes rtol's place
    const double atol = c.scaled ? scaled_floor(c, max_scale) : (c.atol ? *c.atol : 1e-3 * c.rtol * max_num);
    const double floor = 1e-3 * max_num;
    for (const Sample& s : samples) {
        const double err = std::abs(s.analytic - s.numerical);
        const double allowed = atol + (c.scaled ? c.k * c.eps * s.scale : c.rtol * std::abs(s.numerical));
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
    v.rtol = c.scaled ? 0 : c.rtol;
}

/// What one imaginary lane of a pass differentiates along. A γ (β) lane moves every γ
/// (β) of the set at once; f being a sum of terms each with one γ, the lane's part of
/// each term is that term's derivative by its own γ, summed per parameter.
struct Probe {
    enum Kind : std::uint8_t { kGamma, kBeta, kElement, kDirection } kind;
    std::int64_t arg; // the element's position in its set, or the direction's number
};

constexpr int kLanes = 8;
using Pass = Lanes<kLanes>;
constexpr double kParamStep = 0x1p-70; // for γ and β, on which f depends linearly

/// What every step of one check reads: the problem as the passes see it (sets as
/// contiguous doubles, with their steps) and the choices made once from the options.
template <class T> struct Context {
    const CheckInputs<T>& in;
    const GradcheckOptions& opt;
    const SetMap& map;
    std::int64_t n, sets, m, params;
    int threads;
    Criterion crit;
    bool elementwise;
    int directions; // random ±1 directions per set and draw: at most 8, a bit of a sign byte each
    std::vector<double> x;           // set s at [s*m, (s+1)*m), times 2^-scale[s]
    std::vector<double> gamma, beta; // per parameter: γ (ones), β (zeros)
    // Per set, e with 2^e near its standard deviation: the objective runs on x·2^-e (and
    // eps·2^-2e), where y is the same, so that no square or cube of its numbers leaves
    // double's range at any magnitude of x (1e140 and 1e-130 once did); the derivatives
    // in x are then those in x·2^-e times 2^-e, exactly.
    std::vector<int> scale;
};

/// Set by set, as contiguous doubles (set s at [s*m, (s+1)*m)).
template <class T, class U> void gather_sets(const U* v, const Context<T>& ctx, std::vector<double>& out) {
    for (std::int64_t s = 0; s < ctx.sets; ++s)
        for (std::int64_t j = 0; j < ctx.m; ++j) out[s * ctx.m + j] = double(v[ctx.map.flat(s, j)]);
}

/// f_s of the check's mode: the forward template of training or of inference mode.
/// gamma and beta hold the set's params_per_set() parameters, by local index.
template <class S, class T, class XOf, class Term>
S objective(const Context<T>& ctx, std::int64_t s, const XOf& x_of, const double* dy, const S* gamma, const S* beta,
            const Term& term) {
    const int e = ctx.scale[std::size_t(s)];
    const double eps = std::ldexp(ctx.in.eps, -2 * e);
    return ctx.opt.eval ? channel_objective_eval<S>(ctx.m, x_of, dy, gamma, beta,
                                                    std::ldexp(ctx.opt.running_mean[s], -e),
                                                    std::ldexp(ctx.opt.running_var[s], -2 * e), eps, term)
                        : set_objective<S>(
                              ctx.m, ctx.map.centered, x_of, dy,
                              [&](std::int64_t i) { return ctx.map.local_param(i); }, gamma, beta, eps, term);
}

/// The elementwise rtol's default for half-precision gradients, in eps of their dtype.
constexpr double kHalfRtolEps = 16;

/// The default criterion unless --rtol or --atol is given; then elementwise, the missing
/// one at its old default (rtol 1e-11 for float64, 1e-5 for float32; atol 1e-3·rtol·max|n|).
template <class T> Criterion criterion(const GradcheckOptions& opt) {
    Criterion c;
    c.scaled = !opt.rtol && !opt.atol;
    c.eps = std::numeric_limits<T>::epsilon();
    c.tiny = std::numeric_limits<T>::denorm_min();
    c.rtol = opt.rtol ? *opt.rtol : (sizeof(T) == 4 ? 1e-5 : 1e-11);
    if (opt.given_dtype) { // half-precision gradients, checked on the problem's exact widening
        c.eps = dtype_eps(*opt.given_dtype);
        c.k = kJudgeHalfK;
        c.tiny = ulp_in(*opt.given_dtype, 0.0);
        if (!opt.rtol) c.rtol = kHalfRtolEps * c.eps;
    }
    c.atol = opt.atol;
    return c;
}

/// The context of a check: the choices its options and size call for, x gathered set by
/// set, and γ and β widened to double (ones and zeros when not given).
template <class T> Context<T> make_context(const CheckInputs<T>& in, const GradcheckOptions& opt) {
    const SetMap& map = in.map;
    const std::int64_t n = map.size();
    const bool elementwise = opt.full || n <= opt.elementwise_limit;
    Context<T> ctx{in, opt, map, n, map.sets(), map.per_set(), map.params(), detail::resolve_threads(opt.threads),
                   criterion<T>(opt), elementwise,
                   elementwise ? 0 : std::min(opt.directions, 8), {}, {}, {}, {}};
    ctx.x.resize(n);
    gather_sets(in.x, ctx, ctx.x);
    ctx.scale.resize(std::size_t(ctx.sets));
    for (std::int64_t s = 0; s < ctx.sets; ++s) {
        const double step = in.step[std::size_t(s)]; // 2^-70 of the set's std: positive and finite once checked
        const int e = std::isfinite(step) && step > 0 ? std::ilogb(step) + 70 : 0;
        ctx.scale[std::size_t(s)] = e;
        for (std::int64_t j = 0; j < ctx.m; ++j) ctx.x[s * ctx.m + j] = std::ldexp(ctx.x[s * ctx.m + j], -e);
    }
    ctx.gamma.resize(ctx.params);
    ctx.beta.resize(ctx.params);
    for (std::int64_t p = 0; p < ctx.params; ++p) {
        ctx.gamma[p] = in.gamma ? double(in.gamma[p]) : 1.0;
        ctx.beta[p] = in.beta ? double(in.beta[p]) : 0.0;
    }
    return ctx;
}

/// The report's description of the check, before any result.
template <class T> GradcheckReport start_report(const Context<T>& ctx) {
    const GivenGradients<T>& given = ctx.in.given;
    GradcheckReport r;
    r.gradients_given = given.any();
    r.dy_given = ctx.in.dy != nullptr;
    r.mode = ctx.elementwise ? "elementwise" : "randomized";
    r.scaled = ctx.crit.scaled;
    r.k = ctx.crit.scaled ? ctx.crit.k : 0;
    r.eps = ctx.crit.eps;
    r.dy_draws = r.dy_given ? 1 : ctx.opt.random_dy_draws;
    r.x.judged = !given.any() || given.dx;
    r.gamma.judged = !given.any() || given.dgamma;
    r.beta.judged = ctx.in.has_beta && (!given.any() || given.dbeta);
    r.x.total = ctx.n;
    r.gamma.total = ctx.params;
    r.beta.total = ctx.in.has_beta ? ctx.params : 0;
    r.lanes = kLanes;
    r.step_relative = 0x1p-70; // the h_s of CheckInputs::step, relative to the set's std
    return r;
}

/// One dy draw: its upstream gradient set by set, the signs of the random directions,
/// the probes of every set and their numerical derivatives. The probes of set s are
/// probes[first[s] .. first[s+1]), in one array for all sets (a set may be a row of a
/// few elements, and there may be millions). The buffers are kept from draw to draw.
struct Draw {
    int index = 0;
    std::vector<double> dy;            // laid out like Context::x
    std::vector<std::uint8_t> signs;   // bit d: sign of direction d (randomized mode)
    std::vector<std::int64_t> first;   // sets + 1 offsets into probes and numerical
    std::vector<Probe> probes;
    std::vector<dd> numerical;         // one per probe (γ and β lanes: unused)
    std::vector<dd> dgamma, dbeta;     // ∂f/∂γ_p, ∂f/∂β_p: the sets' parts added in set order
    // the scaled criterion's scales for this dy (x's order; per parameter), and their maxima
    std::vector<double> scale_dx, scale_dgamma, scale_dbeta;
    double max_scale_dx = 0, max_scale_dgamma = 0, max_scale_dbeta = 0;
};

/// The probes of every set: γ, β, then the elements compared one by one (all of them, or
/// the first and last plus random samples), then random ±1 directions, whose signs it
/// draws into d.signs.
template <class T> void make_probes(const Context<T>& ctx, const GradcheckReport& r, Draw& d) {
    const std::int64_t n = ctx.n, sets = ctx.sets, m = ctx.m;
    const GradcheckOptions& opt = ctx.opt;
    // randomized mode: the random samples as (set, position), in set order
    std::vector<std::pair<std::int64_t, std::int64_t>> samples;
    if (r.x.judged && !ctx.elementwise) {
        for (int k = 0; k < opt.samples; ++k) {
            const auto flat = std::int64_t(random_bits(opt.seed, kSampleStream + d.index, k) % std::uint64_t(n));
            samples.push_back({ctx.map.set_of(flat), ctx.map.position_in_set(flat)});
        }
        std::sort(samples.begin(), samples.end());
        for (std::int64_t s = 0; s < sets; ++s)
            for (std::int64_t j = 0; j < m; ++j)
                d.signs[s * m + j] =
                    std::uint8_t(random_bits(opt.seed, kDirectionStream + d.index, ctx.map.flat(s, j)));
    }
    d.first.assign(sets + 1, 0);
    d.probes.clear();
    auto sample = samples.begin();
    std::vector<std::int64_t> positions;
    for (std::int64_t s = 0; s < sets; ++s) {
        d.first[s] = std::int64_t(d.probes.size());
        if (r.gamma.judged) d.probes.push_back({Probe::kGamma, 0});
        if (r.beta.judged) d.probes.push_back({Probe::kBeta, 0});
        if (!r.x.judged) continue;
        if (ctx.elementwise) {
            for (std::int64_t j = 0; j < m; ++j) d.probes.push_back({Probe::kElement, j});
            continue;
        }
        positions = {0, m - 1};
        for (; sample != samples.end() && sample->first == s; ++sample) positions.push_back(sample->second);
        std::sort(positions.begin(), positions.end());
        positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
        for (const std::int64_t j : positions) d.probes.push_back({Probe::kElement, j});
        for (int dir = 0; dir < ctx.directions; ++dir) d.probes.push_back({Probe::kDirection, dir});
    }
    d.first[sets] = std::int64_t(d.probes.size());
}

/// Up to kLanes probes of one set, evaluated by one complex-step pass: probes
/// [first, first + count) of the draw.
struct PassItem {
    std::int64_t s, first, count;
};

/// The parts of ∂f/∂γ and ∂f/∂β from one set's pass, by local parameter (empty when
/// the pass has no γ or β lane).
struct ParamParts {
    std::vector<dd> dgamma, dbeta;
};

/// Runs one pass and writes the derivatives along its x probes into their slots of
/// d.numerical, and no others; returns the parts of its γ and β lanes.
template <class T> ParamParts run_pass(const Context<T>& ctx, Draw& d, const PassItem& it) {
    const std::int64_t s = it.s, m = ctx.m, pps = ctx.map.params_per_set();
    const Probe* pr = d.probes.data() + it.first;
    const double h = ctx.in.step[s], hs = std::ldexp(h, -ctx.scale[std::size_t(s)]); // hs: h in x·2^-e
    const double* xs = ctx.x.data() + s * m;
    const std::uint8_t* signs = d.signs.empty() ? nullptr : d.signs.data() + s * m;
    // The set's γ and β as complex numbers, moved along their lanes.
    std::vector<Pass> g(pps), b(pps);
    int gamma_lane = -1, beta_lane = -1;
    for (int k = 0; k < it.count; ++k) {
        if (pr[k].kind == Probe::kGamma) gamma_lane = k;
        if (pr[k].kind == Probe::kBeta) beta_lane = k;
    }
    for (std::int64_t l = 0; l < pps; ++l) {
        g[l] = Pass{{ctx.gamma[ctx.map.param(s, l)], 0}};
        b[l] = Pass{{ctx.beta[ctx.map.param(s, l)], 0}};
        if (gamma_lane >= 0) g[l].im[gamma_lane] = {kParamStep, 0};
        if (beta_lane >= 0) b[l].im[beta_lane] = {kParamStep, 0};
    }
    auto x_of = [&](std::int64_t i) {
        Pass v{{xs[i], 0}};
        for (int k = 0; k < it.count; ++k) {
            if (pr[k].kind == Probe::kElement && pr[k].arg == i) v.im[k] = {hs, 0};
            else if (pr[k].kind == Probe::kDirection) v.im[k] = {(signs[i] >> pr[k].arg) & 1 ? hs : -hs, 0};
        }
        return v;
    };
    ParamParts parts{std::vector<dd>(gamma_lane >= 0 ? pps : 0), std::vector<dd>(beta_lane >= 0 ? pps : 0)};
    auto term = [&](std::int64_t i, const Pass& t) {
        const std::int64_t l = ctx.map.local_param(i);
        if (gamma_lane >= 0) parts.dgamma[l] = detail::add(parts.dgamma[l], t.im[gamma_lane]);
        if (beta_lane >= 0) parts.dbeta[l] = detail::add(parts.dbeta[l], t.im[beta_lane]);
    };
    const Pass f = objective<Pass>(ctx, s, x_of, d.dy.data() + s * m, g.data(), b.data(), term);
    for (int k = 0; k < it.count; ++k)
        if (pr[k].kind == Probe::kElement || pr[k].kind == Probe::kDirection)
            d.numerical[it.first + k] = detail::div(f.im[k], h);
    for (auto& v : parts.dgamma) v = detail::div(v, kParamStep);
    for (auto& v : parts.dbeta) v = detail::div(v, kParamStep);
    return parts;
}

/// Adds one set's parts into the totals of the parameters it uses.
void add_parts(const SetMap& map, std::int64_t s, const std::vector<dd>& parts, std::vector<dd>& total) {
    for (std::size_t l = 0; l < parts.size(); ++l) {
        const std::int64_t p = map.param(s, std::int64_t(l));
        total[p] = detail::add(total[p], parts[l]);
    }
}

/// The numerical derivatives along every probe of the draw, counted in r's forward
/// evaluations. Passes run in a fixed order and each writes only its own slots; the γ
/// and β parts are added into d.dgamma and d.dbeta after each slice, in set order. So
/// threads cannot change the numbers, and only one slice's parts are held at a time.
template <class T> void numerical_derivatives(const Context<T>& ctx, Draw& d, GradcheckReport& r) {
    std::vector<PassItem> passes;
    d.numerical.assign(d.probes.size(), dd{});
    d.dgamma.assign(ctx.params, dd{});
    d.dbeta.assign(ctx.params, dd{});
    for (std::int64_t s = 0; s < ctx.sets; ++s)
        for (std::int64_t b = d.first[s]; b < d.first[s + 1]; b += kLanes)
            passes.push_back({s, b, std::min<std::int64_t>(kLanes, d.first[s + 1] - b)});
    // In slices, so that progress is reported from this thread.
    const std::int64_t slices = std::min<std::int64_t>(50, std::int64_t(passes.size()));
    std::vector<ParamParts> parts;
    for (std::int64_t sl = 0; sl < slices; ++sl) {
        const std::int64_t lo = std::int64_t(passes.size()) * sl / slices;
        const std::int64_t hi = std::int64_t(passes.size()) * (sl + 1) / slices;
        parts.assign(hi - lo, {});
        detail::parallel_for(hi - lo, ctx.threads, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t k = lo + b; k < lo + e; ++k) parts[k - lo] = run_pass(ctx, d, passes[k]);
        });
        for (std::int64_t k = lo; k < hi; ++k) {
            add_parts(ctx.map, passes[k].s, parts[k - lo].dgamma, d.dgamma);
            add_parts(ctx.map, passes[k].s, parts[k - lo].dbeta, d.dbeta);
        }
        if (ctx.opt.progress) ctx.opt.progress((d.index + double(sl + 1) / double(slices)) / r.dy_draws);
    }
    r.forward_evaluations += std::int64_t(passes.size());
    r.forward_element_evaluations += std::int64_t(passes.size()) * ctx.m;
}

/// Each parameter's analytic and numerical derivative.
template <class T>
std::vector<Sample> parameter_samples(const Context<T>& ctx, const std::vector<dd>& numerical, const T* analytic,
                                      const std::vector<double>& scale) {
    std::vector<Sample> out;
    for (std::int64_t p = 0; p < ctx.params; ++p)
        out.push_back({p, double(analytic[p]), to_double(numerical[p]), scale.empty() ? 0.0 : scale[p]});
    return out;
}

/// Judges the elements compared one by one (x's probed elements, every γ and β).
template <class T>
void judge_elements(const Context<T>& ctx, const Draw& d, const GivenGradients<T>& a, GradcheckReport& r) {
    const Criterion& c = ctx.crit;
    if (r.gamma.judged) {
        judge(r.gamma, parameter_samples(ctx, d.dgamma, a.dgamma, d.scale_dgamma), ctx.in.param_shape, d.index, c,
              d.max_scale_dgamma);
        r.gamma.checked = ctx.params;
    }
    if (r.beta.judged) {
        judge(r.beta, parameter_samples(ctx, d.dbeta, a.dbeta, d.scale_dbeta), ctx.in.param_shape, d.index, c,
              d.max_scale_dbeta);
        r.beta.checked = ctx.params;
    }
    if (r.x.judged) {
        std::vector<Sample> sx;
        for (std::int64_t s = 0; s < ctx.sets; ++s)
            for (std::int64_t k = d.first[s]; k < d.first[s + 1]; ++k)
                if (const Probe& pr = d.probes[k]; pr.kind == Probe::kElement) {
                    const std::int64_t flat = ctx.map.flat(s, pr.arg);
                    sx.push_back({flat, double(a.dx[flat]), to_double(d.numerical[k]),
                                  d.scale_dx.empty() ? 0.0 : d.scale_dx[flat]});
                }
        judge(r.x, sx, ctx.in.shape, d.index, c, d.max_scale_dx);
        r.x.checked = std::max<std::int64_t>(r.x.checked, std::int64_t(sx.size()));
    }
}

/// Randomized mode: judges dx by its directional derivatives, one per set and direction.
/// If every element were within atol + rtol·|n_i| (scaled: floor + k·eps·scale_i), the
/// directional derivative Σ n_i·v_i would be within m·atol + rtol·Σ|n_i| (scaled: m·floor
/// + Σ k·eps·scale_i·|v_i|, |v_i| = 1) of Σ a_i·v_i.
template <class T> void judge_directions(const Context<T>& ctx, const Draw& d, const T* a_dx, GradcheckReport& r) {
    const std::int64_t sets = ctx.sets, m = ctx.m;
    const int directions = ctx.directions;
    std::vector<dd> dir_numerical(std::size_t(sets) * directions);
    for (std::int64_t s = 0; s < sets; ++s)
        for (std::int64_t k = d.first[s]; k < d.first[s + 1]; ++k)
            if (const Probe& pr = d.probes[k]; pr.kind == Probe::kDirection)
                dir_numerical[s * directions + pr.arg] = d.numerical[k];
    const Criterion& c = ctx.crit;
    const double atol = c.scaled ? scaled_floor(c, d.max_scale_dx) : (c.atol ? *c.atol : r.x.atol);
    for (std::int64_t s = 0; s < sets; ++s) {
        for (int dir = 0; dir < directions; ++dir) {
            dd ana{}, scale{};
            double terms = 0; // Σ scale_i·|v_i|
            for (std::int64_t j = 0; j < m; ++j) {
                const std::int64_t flat = ctx.map.flat(s, j);
                const double a = double(a_dx[flat]);
                ana = detail::add(ana, (d.signs[s * m + j] >> dir) & 1 ? a : -a);
                scale = detail::add(scale, std::abs(a));
                if (c.scaled) terms += d.scale_dx[flat];
            }
            const double err = std::abs(to_double(detail::sub(ana, dir_numerical[s * directions + dir])));
            const double allowed =
                double(m) * atol + (c.scaled ? c.k * c.eps * terms : c.rtol * to_double(scale));
            const double rel = scale.hi > 0 ? err / to_double(scale) : (err > 0 ? INFINITY : 0);
            ++r.x.directional_checks;
            if (!(err <= allowed)) r.x.directional_passed = r.x.passed = false;
            const double ratio = allowed > 0 ? err / allowed : (err > 0 ? INFINITY : 0);
            r.x.directional_worst_ratio = std::max(r.x.directional_worst_ratio, std::isnan(ratio) ? INFINITY : ratio);
            if (!(rel <= r.x.directional_max_rel_err)) {
                r.x.directional_max_rel_err = std::isnan(rel) ? INFINITY : rel;
                r.x.directional_worst_channel = s;
            }
        }
    }
}

/// ∂f/∂x_j of set s by Richardson-extrapolated central differences of the forward
/// template in real double-double, at steps 2^-20 and 2^-21 of the set's std.
template <class T> dd richardson_derivative(const Context<T>& ctx, const Draw& d, std::int64_t s, std::int64_t j) {
    const std::int64_t m = ctx.m;
    const double* xs = ctx.x.data() + s * m;
    std::vector<Real> g, b;
    for (std::int64_t l = 0; l < ctx.map.params_per_set(); ++l) {
        g.push_back({{ctx.gamma[ctx.map.param(s, l)], 0}});
        b.push_back({{ctx.beta[ctx.map.param(s, l)], 0}});
    }
    auto central = [&](double hh) { // hh in x's units; x·2^-e moves by hh·2^-e
        const double hs = std::ldexp(hh, -ctx.scale[std::size_t(s)]);
        const dd plus = detail::two_sum(xs[j], hs), minus = detail::two_sum(xs[j], -hs);
        auto at = [&](const dd& xj) {
            return objective<Real>(ctx, s, [&](std::int64_t i) { return i == j ? Real{xj} : Real{{xs[i], 0}}; },
                                   d.dy.data() + s * m, g.data(), b.data(), [](std::int64_t, const Real&) {});
        };
        return detail::div((at(plus) - at(minus)).v, 2 * hh);
    };
    const double hh = std::ldexp(ctx.in.step[s], 50); // 2^-20 std
    const dd d1 = central(hh), d2 = central(hh / 2);
    return detail::div(detail::sub(detail::mul(d2, 4.0), d1), 3.0);
}

/// The method's own error: complex step against Richardson-extrapolated central
/// differences, on up to 6 probed elements (the first few and the last of a few sets).
template <class T> void crosscheck(const Context<T>& ctx, const Draw& d, GradcheckReport& r) {
    const std::int64_t sets = ctx.sets;
    double max_diff = 0, max_mag = 0;
    int done = 0;
    for (std::int64_t s = 0; s < sets && done < 6; s += std::max<std::int64_t>(1, sets / 3)) {
        const std::int64_t b = d.first[s], count = d.first[s + 1] - b;
        for (std::int64_t k = 0; k < count && done < 6; ++k) {
            if (d.probes[b + k].kind != Probe::kElement) continue;
            if (k > 4 && k + 1 != count) continue; // the first few and the last
            const dd richardson = richardson_derivative(ctx, d, s, d.probes[b + k].arg);
            max_diff = std::max(max_diff, std::abs(to_double(detail::sub(richardson, d.numerical[b + k]))));
            max_mag = std::max(max_mag, std::abs(to_double(d.numerical[b + k])));
            r.forward_evaluations += 4;
            r.forward_element_evaluations += 4 * ctx.m;
            ++done;
        }
    }
    r.crosscheck_elements = done;
    r.estimated_method_error = max_mag > 0 ? max_diff / max_mag : max_diff;
}

} // namespace

template <class T> GradcheckReport run_check(const CheckInputs<T>& in, const GradcheckOptions& opt) {
    const auto t0 = std::chrono::steady_clock::now();
    const Context<T> ctx = make_context(in, opt);
    GradcheckReport r = start_report(ctx);
    const std::int64_t n = ctx.n, params = ctx.params;

    std::vector<T> dy_draw(n), dx(n), dgamma(params), dbeta(params);
    // Each draw judges the analytic gradients for one dy against the derivatives of its probes.
    Draw d;
    d.dy.resize(n);
    d.signs.resize(ctx.elementwise ? 0 : n);
    for (int draw = 0; draw < r.dy_draws; ++draw) {
        d.index = draw;
        const T* dy = in.dy;
        if (!dy) {
            for (std::int64_t i = 0; i < n; ++i) dy_draw[i] = T(normal(opt.seed, kDyStream + draw, i));
            dy = dy_draw.data();
        }
        gather_sets(dy, ctx, d.dy);

        // The analytic gradients: the caller's, or bnorm's own backward.
        GivenGradients<T> a = in.given;
        if (!in.given.any()) {
            in.backward(dy, dx.data(), dgamma.data(), in.has_beta ? dbeta.data() : nullptr);
            a = {dx.data(), dgamma.data(), in.has_beta ? dbeta.data() : nullptr};
        }

        if (ctx.crit.scaled) {
            d.scale_dx.assign(n, 0.0), d.scale_dgamma.assign(params, 0.0);
            d.scale_dbeta.assign(in.has_beta ? params : 0, 0.0);
            in.scales(dy, d.scale_dx.data(), d.scale_dgamma.data(), in.has_beta ? d.scale_dbeta.data() : nullptr);
            auto max_of = [](const std::vector<double>& v) {
                return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
            };
            d.max_scale_dx = max_of(d.scale_dx), d.max_scale_dgamma = max_of(d.scale_dgamma);
            d.max_scale_dbeta = max_of(d.scale_dbeta);
        }
        make_probes(ctx, r, d);
        numerical_derivatives(ctx, d, r);
        judge_elements(ctx, d, a, r);
        if (r.x.judged && ctx.directions > 0) judge_directions(ctx, d, a.dx, r);
        if (draw == 0 && r.x.judged) crosscheck(ctx, d, r);
    }

    r.passed = r.x.passed && r.gamma.passed && r.beta.passed;
    r.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

template GradcheckReport run_check<float>(const CheckInputs<float>&, const GradcheckOptions&);
template GradcheckReport run_check<double>(const CheckInputs<double>&, const GradcheckOptions&);

} // namespace bnorm::gradcheck_detail
